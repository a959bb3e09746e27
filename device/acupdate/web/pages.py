# acupdate.web.pages: the message pages (refusals, errors), the result page (its <div id=res>
# carries the final figures in data-* attributes for the progress script) and the restart
# after a success; in the frame of acupdate.web.frame.
from . import core
from .frame import OK, esc, page  # noqa: F401 (the frame, for the pages here and theirs)
from .source import drain


async def refuse(src, w, code):
    """401 (wrong or no credentials), 404, 405, 411 (no length) or 413 (too large). The
    body is read first (unless the client waits for "100 Continue" or it is too large),
    so that the browser gets the answer."""
    if not src.expect_continue:
        await drain(src)
    path = src.path.decode()
    if code == 401:
        await message(
            w,
            b"401 Unauthorized",
            "Unauthorized",
            core.UNAUTHORIZED,
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
    await core.send(
        w,
        code,
        page(title, b'<div id="res"><p class="err">', esc(text), b"</p></div>"),
        extra=extra,
    )


async def result(src, w, code=OK, restart=True):
    """The outcome of the update in <div id=res>; after a success the board restarts
    once the page is sent (unless `restart` is False: the caller restarts it)."""
    st = core.st
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
    await core.send(
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
    if ok and restart and not st.restarting:
        st.restarting = True
        import asyncio

        asyncio.create_task(_restart())


async def _restart():
    import asyncio

    import machine

    await asyncio.sleep_ms(500)  # the answer leaves the board first
    print("acupdate web: restarting into the new image")
    machine.reset()
