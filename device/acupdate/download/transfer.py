# acupdate.download.transfer: the rest of an image download, after acupdate.download.start
# checked the first block: the blocks into ota.Writer, loaded then. When the
# connection drops mid-image (cut, read timeout, reset) acupdate.download.resume, loaded for it,
# asks for the rest (or starts over); a drop inside the first block, before a Writer
# exists, starts over too. The deadline bounds every read and every wait.
from micropython import const

from ..config import cold

_BLINK = const(8)  # LED toggles every 8 blocks (32 KiB)
_PROGRESS = const(3)  # agent.PROGRESS


def run(up, a, part, f, size, deadline):
    """Continue first.image() from its result `a` (see there for the other arguments;
    `f`: the running image's facts, reqhdrs.facts()). The image's MD5 once it boots
    next."""
    r, b, target, ctx = a
    md5, n, sha, k, err = b
    del a[:]  # (a list) emptied: the caller's frame keeps nothing of it
    b = w = None
    tries = 0
    while True:
        if r:
            try:
                if not err:
                    if not w:
                        from ..ota import writer

                        w = writer.Writer(part, n, up.buf, sha)
                    err = _pump(up, r, w, k)
            finally:
                r.close()
        if err is None:
            return w.finish(md5)
        tries += 1
        try:
            r, w, md5, n, sha, k, err = cold(
                "download.resume",
                "again",
                up,
                w,
                err,
                tries,
                md5,
                n,
                sha,
                target,
                part,
                f,
                size,
                deadline,
                ctx,
            )
        except MemoryError:
            raise OSError(
                "Connection dropped at byte %d of %d (%s); the heap has no room to resume"
                % (w.done if w else 0, n, err.args[0])
            )


def _pump(up, r, w, n):
    # The transfer, from n bytes already in the block buffer: nothing is allocated per
    # block (room() is the whole buffer's view). None when the whole image is in, else the
    # OSError that ended the connection (the bytes received before it are committed: see
    # http.Response.readinto).
    cfg = up.cfg
    size = w.size
    led = None
    if cfg.led is not None:
        import machine

        led = machine.Pin(cfg.led, machine.Pin.OUT, value=cfg.led_on)
    r.err = 0  # short reads before an error: see http
    try:
        while True:
            if n:
                w.commit(n)
                up.status = _PROGRESS
                if up.on_progress:
                    up.on_progress(w.done, size)
                if led and not w.fill and not w.blk % _BLINK:
                    led.value(not led.value())
            if w.done >= size:
                break
            try:
                n = r.readinto(w.room())
            except OSError as e:
                return e
            if not n:  # the body ended early: a drop, or (chunked) an error
                return cold("download.resume", "early", r, w.done, size)
        if r.length < 0 and not r.err:  # chunked or up to EOF: the body must end here
            cold("download.resume", "end", r, size)
        return None
    finally:
        if led:
            led.value(not cfg.led_on)
