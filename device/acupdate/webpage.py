# acupdate.webpage: what every update page shares: the frame (one inline style sheet and
# the menu; no external assets, the board may have no internet), the message pages, the
# result page (its <div id=res> carries the final figures in data-* attributes for the
# progress script) and the restart after a success. Pages are tuples of bytes pieces; text
# from outside goes through esc().
from . import web

OK = b"200 OK"

_HEAD = (
    b'<!DOCTYPE html><html><head><meta charset="utf-8">'
    b'<meta name="viewport" content="width=device-width,initial-scale=1"><title>'
)
_STYLE = (
    b"</title><style>body{font-family:sans-serif;max-width:36em;margin:0 auto;padding:1em;"
    b"color:#222}nav{background:#2f4f4f;padding:.5em;border-radius:4px}nav a{color:#fff;"
    b"margin-right:1.2em;text-decoration:none}h1{font-size:1.3em;color:#2f4f4f}table{width:100%;"
    b"border-collapse:collapse}td,th{text-align:left;padding:.35em;border-bottom:1px solid #ddd}"
    b"progress{width:100%;height:1.5em}button{padding:.5em 1.6em;font-size:1em}.ok{color:#060}"
    b".err{color:#b00}.note{color:#666;font-size:.9em}input{margin:.3em 0}</style></head><body>"
    b'<nav><a href="/">acupdate</a><a href="/_ac/update">UPDATE</a><a href="/update">Upload'
    b"</a></nav><h1>"
)


def esc(s):
    """Text for HTML, as bytes."""
    if not isinstance(s, str):
        s = str(s)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
        if a in s:
            s = s.replace(a, b)
    return s.encode()


def page(title, *body):
    t = esc(title)
    return (_HEAD, t, _STYLE, t, b"</h1>") + body + (b"</body></html>",)


async def refuse(src, w, head, code):
    """401 (wrong or no credentials), 404, 405, 411 (no length) or 413 (too large). The
    body is read first (unless the client waits for "100 Continue" or it is too large),
    so that the browser gets the answer."""
    if not head[4]:
        await web.drain(src)
    path = head[1].decode()
    if code == 401:
        await message(
            w,
            b"401 Unauthorized",
            "Unauthorized",
            "This board's update pages need the right user name and password.",
            b'WWW-Authenticate: Basic realm="acupdate"\r\n',
        )
    elif code == 405:
        how = "POST" if path.endswith("_act") else "GET"
        await message(w, b"405 Method Not Allowed", "Method not allowed", path + " takes " + how)
    elif code == 411:
        await message(w, b"411 Length Required", "No length", "The upload has no Content-Length.")
    elif code == 413:
        await message(
            w,
            b"413 Payload Too Large",
            "Too large",
            "%d bytes is more than an OTA slot holds." % src.length,
        )
    else:
        await message(w, b"404 Not Found", "Not found", "This board has no page " + path)


async def message(w, code, title, text, extra=b""):
    await web.send(
        w,
        code,
        page(title, b'<div id="res"><p class="err">', esc(text), b"</p></div>"),
        extra=extra,
    )


async def result(src, w, head, code=OK):
    """The outcome of the update in <div id=res>; after a success the board restarts
    once the page is sent."""
    st = web.st
    if st.busy:
        return await message(
            w, code, "Update running", "%s: %d of %d bytes so far" % (st.name, st.amount, st.size)
        )
    if st.status == "IDLE":
        return await message(w, code, "No update", "No update has run since the start.")
    ok = st.status == "SUCCESS"
    if ok:
        title = b"Update successful"
        tail = b"<p>The board restarts now and boots the new image.</p>"
    else:
        title = b"No update" if st.status == "NOAVAIL" else b"Update failed"
        again = b"/update" if st.kind == "upload" else b"/_ac/update"
        tail = b'<p>The running image is untouched. <a href="%s">Try again</a></p>' % again
    await web.send(
        w,
        code,
        page(
            "Update result",
            b'<div id="res" data-status="%s" data-amount="%d" data-size="%d"><p class="%s"><b>'
            % (st.status.encode(), st.amount, st.size, b"ok" if ok else b"err"),
            title,
            b"</b></p><p>",
            esc(st.text),
            b"</p>",
            tail,
            b"</div>",
        ),
    )
    if ok and not st.restarting:
        st.restarting = True
        import asyncio

        asyncio.create_task(_restart())


async def _restart():
    import asyncio

    import machine

    await asyncio.sleep_ms(500)  # the answer leaves the board first
    print("acupdate web: restarting into the new image")
    machine.reset()
