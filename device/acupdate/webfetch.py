# acupdate.webfetch: the UPDATE menu's install from the update server, run as a task of the
# web server's asyncio loop. Same request (ESP32 HTTPUpdate headers from
# agent.Updater.headers), same reply checks and texts as the agent, same image checks before
# a byte is written; then the image goes into the next OTA slot one block per step, the
# loop serving other requests (the progress polls) between blocks.
import asyncio
import gc

from . import web

_HTTP_ERRORS = {401: "Unauthorized (401)", 403: "Forbidden (403)", 404: "File Not Found (404)"}


def _prepare(cfg):
    # (target slot, running image's chip id, request headers); agent and slots dropped after.
    from . import slots
    from .agent import Updater

    # The Updater makes its own 4096-byte buffer: the block buffer is freed just before, so
    # that the new one takes its space; it is the block buffer from then on.
    web.block = None
    gc.collect()
    try:
        up = Updater(cfg)
    except Exception:
        web.block = bytearray(4096)
        raise
    web.block = up.buf
    try:
        target = slots.target()
        return (target,) + tuple(up.headers(target))
    finally:
        web.drop("agent", "slots")


def _check(first, cid, size, space):
    # imagecheck.check before a byte is written; the image's version. imagecheck dropped.
    from . import imagecheck

    try:
        imagecheck.check(first, cid, size, space)
        return imagecheck.app_desc(first)[0] if len(first) >= 176 else ""
    finally:
        web.drop("imagecheck")


async def run(cfg, name):
    """The install task: web.st tells its progress and outcome; web.leave() when it ends."""
    st = web.st
    try:
        await install(cfg, name, st)
    except Exception as e:  # MemoryError too: the page must say what happened
        web.fail(web.msg(e))
    finally:
        st.busy = False
        web.leave()
    print("acupdate web: install %s: %s" % (st.status, st.text))


async def install(cfg, name, st):
    """Install catalog entry `name` from the server in `cfg`; progress and result in `st`."""
    target, cid, hdrs = _prepare(cfg)
    req = (cfg.host, cfg.port, cfg.image_target(name), hdrs, cfg.timeout)
    cfg = hdrs = None
    web.drop("config")
    gc.collect()
    await asyncio.sleep_ms(0)
    from . import http

    # The reply head goes through the block buffer's last 1026 bytes: a reply without a
    # Content-Length (chunked) is refused before its body is read into the block.
    r = http.request(*req, buf=memoryview(web.block)[3070:])
    req = None
    try:
        if r.status == 304:
            st.status = "NOAVAIL"
            st.text = "the board already runs %s: nothing to install" % name
            return
        if r.status != 200:
            raise OSError(_HTTP_ERRORS.get(r.status) or "Wrong HTTP Code (%d)" % r.status)
        size = r.length
        if size <= 0:
            raise OSError("Server Did Not Report Size")
        md5 = r.headers.get("x-md5", "")
        if len(md5) != 32 or md5.strip("0123456789abcdefABCDEF"):
            raise ValueError("Bad x-MD5 header %r: expected 32 hex digits" % md5[:40])
        st.size = size
        st.status = "PROGRESS"
        buf = web.block
        mv = memoryview(buf)
        n = r.readinto(mv[: min(size, len(buf))])
        version = _check(mv[:n], cid, size, target.info()[3])
        gc.collect()
        from . import ota

        w = ota.Writer(target, size, buf)  # block 0's first n bytes are already in buf
        w.commit(n)
        while True:
            st.amount = w.done
            if w.done >= size:
                break
            await asyncio.sleep_ms(0)
            k = r.readinto(w.room())
            if not k:
                break
            w.commit(k)
        md5 = w.finish(md5)
    finally:
        r.close()
    st.status = "SUCCESS"
    st.text = "%s: %d bytes, MD5 %s, version %s, written to %s and set to boot." % (
        name,
        size,
        md5,
        version or "(blank)",
        target.info()[4],
    )
