# acupdate.download.transfer: the rest of an image download, once acupdate.download.start has
# checked its first block: the blocks go into the slot (ota.writer.Writer) as they come,
# with the progress callback and the LED. When the connection drops (cut, read timeout,
# reset), the rest is asked for (acupdate.download.resume), each step in a Phase.
from micropython import const

from .. import Phase

_BLINK = const(8)  # the LED toggles every 8 blocks (32 KiB)
_PROGRESS = const(3)  # agent.PROGRESS


def run(up, dl):
    """Carry Download `dl` (started by start.begin) on for Updater `up` until every byte of
    the image is in the slot (dl.writer; its finish() checks it and sets it to boot)."""
    while True:
        r = dl.reply
        if r is not None:
            try:
                if dl.error is None:
                    if dl.writer is None:
                        from ..ota.writer import Writer

                        dl.writer = Writer(dl.part, dl.size, up.buf, dl.sha256)
                    dl.error = _pump(up, dl, r)
            finally:
                r.close()
                dl.reply = r = None
        if dl.error is None:
            return
        dl.tries += 1
        cut = dl.error.args[0] if dl.error.args else "OSError"  # (dl.error is None once resumed)
        try:
            with Phase():  # the wait, then the first byte still wanted
                import acupdate.download.resume

                start = acupdate.download.resume.wait(up, dl)
            with Phase():  # the request for the rest
                import acupdate.download.request

                try:
                    r = acupdate.download.request.get(
                        up.cfg, dl.target, dl.lines, up.buf, dl.deadline, dl, start
                    )
                except OSError as e:
                    dl.error = e  # the next try, if any is left
                    continue
            with Phase():  # its reply: the rest, or the image again from byte 0
                import acupdate.download.resume

                over = acupdate.download.resume.take(up, dl, r, start)
            if over:  # the first block's checks again, the resume's code gone
                with Phase():
                    import acupdate.download.start

                    acupdate.download.start.begin(up, dl, r, False)
        except MemoryError:
            w = dl.writer  # (its first byte not yet written, before or after a rewind)
            raise OSError(
                "Connection dropped at byte %d of %d (%s); the heap has no room to resume"
                % (w.done - w.fill if w else 0, dl.size, cut)
            )


def _pump(up, dl, r):
    # The transfer from reply `r`, the first dl.have bytes already in the block buffer:
    # nothing is allocated per block (room() is the whole buffer's view). None when the
    # whole image is in, else the OSError that ended the connection (the bytes received
    # before it are written: see Response.readinto).
    cfg = up.cfg
    w = dl.writer
    n = dl.have
    dl.have = 0
    led = None
    if cfg.led is not None:
        import machine

        led = machine.Pin(cfg.led, machine.Pin.OUT, value=cfg.led_on)
    r.err = 0  # short reads before an error: see Response.readinto
    try:
        while True:
            if n:
                w.commit(n)
                up.status = _PROGRESS
                if up.on_progress:
                    up.on_progress(w.done, w.size)
                if led and not w.fill and not w.blk % _BLINK:
                    led.value(not led.value())
            if w.done >= w.size:
                break
            try:
                n = r.readinto(w.room())
            except OSError as e:
                return e
            if not n:  # the body ended early
                if r.chunked:  # properly: the server sent less than it said
                    raise ValueError(
                        "Image is %d bytes, the catalog lists %d: chunked body ended early"
                        % (w.done, w.size)
                    )
                return OSError("connection closed after %d of %d bytes" % (w.done, w.size))
        if r.length < 0 and not r.err:  # chunked or up to EOF: the body must end here
            _ends(r, w.size)
        return None
    finally:
        if led:
            led.value(not cfg.led_on)


def _ends(r, size):
    # A body without a Content-Length must end after the `size` bytes the catalog listed.
    try:
        n = r.readinto(bytearray(1))
    except OSError:
        n = 0
    if n:
        raise ValueError("The server sends more than the catalog's %d bytes" % size)
