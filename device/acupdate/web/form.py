# acupdate.web.form: the upload form, whose script posts the form and feeds the progress bar
# while the board writes the image.
from . import core, frame, progressbar

_UPLOAD_JS = (
    b"document.getElementById('f').onsubmit=function(e){e.preventDefault();var x=new "
    b"XMLHttpRequest(),T;B.hidden=false;S.textContent='Uploading';this.querySelector('button')"
    b".disabled=true;x.open('POST','/update');",
    b"x.onload=function(){var e=x.status!=200;"
    b"clearInterval(T);if(e)B.value=0;put(x.responseText);if(e)S.textContent='The board "
    b"answered '+x.status+' '+x.statusText};",
    b"x.onerror=function(){clearInterval(T);"
    b"S.textContent='The connection "
    b"to the board was lost: the upload did not finish.'};x.send(new FormData(this));"
    b"T=setInterval(function(){poll().catch(function(){})},250)}</script>",
)


async def form(src, w):
    await core.send(
        w,
        frame.OK,
        frame.page(
            "Upload firmware",
            b'<form id="f" method="POST" action="/update" enctype="multipart/form-data">'
            b'<p><label>MD5 of the file (optional)<br><input name="md5" size="34" '
            b'maxlength="32" pattern="[0-9a-fA-F]{32}"></label></p>',
            b"<p><label>Firmware image "
            b'(.bin, the app only)<br><input type="file" name="firmware" accept=".bin" '
            b"required></label></p><p><button>Update</button></p></form>",
            progressbar.BAR.replace(b'value="0">', b'value="0" hidden>'),
            *progressbar.JS,
            *_UPLOAD_JS,
        ),
    )
