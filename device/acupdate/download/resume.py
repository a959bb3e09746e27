# acupdate.download.resume: what a download does when its connection drops: wait
# (cfg.backoff, doubling; at most cfg.retries tries, never past the deadline), then ask for
# "Range: bytes=<first byte not yet written>-" (the bytes of a block not yet written are
# dropped, so the block buffer can take the reply's head). A 206 with the matching
# Content-Range continues the image and its hashes; a 200 starts it over from byte 0 (a new
# Writer: nothing of the old try can boot, its header was never written); anything else
# fails.
import time


def wait(up, dl):
    """After dl.error ended the connection of Download `dl` (try dl.tries): sleep before
    the next try, or raise the error that ends the update. The first byte still wanted (a
    partial block is asked for again: the block buffer is then free for the reply's head)."""
    _wait(up.cfg, dl)
    return dl.writer.rewind() if dl.writer else 0


def take(up, dl, r, start):
    """Go on with reply `r` to the request from byte `start`: the rest of the image (a
    206 that is the rest of the same one: dl.reply is set, False), or, for a 200, the image
    again from byte 0 (True: the caller starts it over with download.start.begin(), once
    this module has left the heap); anything else ends the update."""
    try:
        if start and r.status == 206:
            _check(r, start, dl.size, dl.md5)
            if r.chunked:
                r.own_buffer()
            dl.reply = r
            dl.error = None
            return False
        if start and r.status != 200:
            raise OSError(
                "Resume refused: the server answered %d to Range: bytes=%d-" % (r.status, start)
            )
    except BaseException:
        r.close()
        raise
    dl.writer = None  # a start over: the old Writer goes first
    return True


def _wait(cfg, dl):
    # Sleep before the next try, or raise the error that ends the update.
    w = dl.writer
    done = w.done - w.fill if w else 0  # the first byte not yet written
    why = "Connection dropped at byte %d of %d (%s)" % (done, dl.size, dl.error.args[0])
    left = time.ticks_diff(dl.deadline.at, time.ticks_ms())
    if left <= 0:
        raise OSError(
            "Update deadline of %s s passed with %d of %d bytes written"
            % (cfg.deadline, done, dl.size)
        )
    if dl.tries > cfg.retries:
        raise OSError("%s; gave up after %d retries" % (why, cfg.retries))
    ms = int(cfg.backoff * 1000) << (dl.tries - 1)
    if left < ms:
        raise OSError("Update deadline of %s s leaves no time to retry: %s" % (cfg.deadline, why))
    time.sleep_ms(ms)


def _check(r, start, size, md5):
    # A 206 reply continues the image only if it is the rest of the same one.
    want = "bytes %d-%d/%d" % (start, size - 1, size)
    got = r.headers.get("content-range")
    if got != want:
        raise ValueError("Resume refused: Content-Range %r, expected %r" % (got, want))
    m = r.headers.get("x-md5")
    if m and m.lower() != md5.lower():
        raise ValueError(
            "Resume refused: the image changed on the server (x-MD5 %s, was %s)" % (m, md5)
        )
    if r.length >= 0 and r.length != size - start:
        raise ValueError(
            "Resume refused: Content-Length %d for bytes %d-%d" % (r.length, start, size - 1)
        )
