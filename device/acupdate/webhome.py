# acupdate.webhome: the home page (running slot and version). Its own module: GET / loads
# neither the upload form's script nor the progress bar.
from . import web, webframe


async def home(src, w, head):
    import esp32

    from .ota import image as imagecheck

    run = esp32.Partition(esp32.Partition.RUNNING)
    buf = bytearray(256)
    run.readblocks(0, buf)
    try:
        version = imagecheck.AppDesc(buf).version or "(blank)"
    except ValueError:
        version = "(no app descriptor)"
    esc = webframe.esc
    await web.send(
        w,
        webframe.OK,
        webframe.page(
            "Firmware update",
            b"<p>Running: <b>",
            esc(run.info()[4]),
            b"</b>, version <b>",
            esc(version),
            b'</b></p><ul><li><a href="/_ac/update">UPDATE</a>: install an image from the '
            b'update server</li><li><a href="/update">Upload</a>: send a .bin file from this '
            b"computer</li></ul>",
        ),
    )
