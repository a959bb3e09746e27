# acupdate.download.resume: what an image download (acupdate.download.transfer) does when
# its connection drops, loaded only then: wait (cfg.backoff, doubling; at most cfg.retries
# tries, never
# past the deadline), then ask for "Range: bytes=<first byte not yet written>-" (the bytes
# of a block not yet written are dropped: the block buffer then takes the reply's head).
# A 206 with the matching Content-Range continues the image and its MD5; a 200 starts it over
# from byte 0 (a new Writer; nothing of the old try can boot, its header was never
# written); anything else fails.
import time

from micropython import const

_HEAD = const(3070)  # reply heads go to buf[_HEAD:], http.LINE_MAX + 2 bytes


def again(up, w, err, tries, md5, n, sha, target, part, f, size, deadline, ctx):
    """After connection error `err` (try `tries`) of the download into Writer `w` (None
    when it dropped in the first block): the next reply and how it goes on, as (reply or
    None, Writer or None for a start over, md5, size, sha256, bytes in the block buffer,
    the next connection error or None). See transfer.run() for the other arguments."""
    wait(up.cfg, w.done if w else 0, n, err, tries, deadline)
    done = w.rewind() if w else 0  # a partial block is asked for again: the buffer is free
    from .headers import raw
    from .request import get

    try:
        r = get(up.cfg, target, raw(part, f), memoryview(up.buf)[_HEAD:], deadline, ctx, done)
    except OSError as e:
        return None, w, md5, n, sha, 0, e
    try:
        if done and r.status == 206:
            check(r, done, n, md5)
            if r.chunked:
                from .start import own

                own(r)
            return r, w, md5, n, sha, 0, None
        if done and r.status != 200:
            raise OSError(
                "Resume refused: the server answered %d to Range: bytes=%d-" % (r.status, done)
            )
        w = None  # a start over: the old Writer goes first
        from .start import begin

        return (r, None) + begin(r, up, part, f[0], size, sha)
    except BaseException:
        r.close()
        raise


def wait(cfg, done, size, err, tries, deadline):
    """Sleep before try `tries` + 1 after connection error `err`, `done` bytes of `size`
    received, or raise the error that ends the update."""
    why = "Connection dropped at byte %d of %d (%s)" % (done, size, err.args[0])
    left = time.ticks_diff(deadline, time.ticks_ms())
    if left <= 0:
        raise OSError(
            "Update deadline of %s s passed after %d of %d bytes" % (cfg.deadline, done, size)
        )
    if tries > cfg.retries:
        raise OSError("%s; gave up after %d retries" % (why, cfg.retries))
    ms = int(cfg.backoff * 1000) << (tries - 1)
    if left < ms:
        raise OSError("Update deadline of %s s leaves no time to retry: %s" % (cfg.deadline, why))
    time.sleep_ms(ms)


def check(r, start, size, md5):
    """A 206 reply continues the image only if it is the rest of the same one."""
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


def early(r, done, size):
    """A body that ended after `done` of `size` bytes: the OSError to resume from (the
    connection was closed), or, for a chunked body that ended properly, the error."""
    if r.chunked:
        raise ValueError(
            "Image is %d bytes, the catalog lists %d: chunked body ended early" % (done, size)
        )
    return OSError("connection closed after %d of %d bytes" % (done, size))


def end(r, size):
    """A body without Content-Length must end after the `size` bytes the catalog listed."""
    try:
        n = r.readinto(bytearray(1))
    except OSError:
        n = 0
    if n:
        raise ValueError("The server sends more than the catalog's %d bytes" % size)
