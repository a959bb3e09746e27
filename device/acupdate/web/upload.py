# acupdate.web.upload: POST /update, a browser's multipart/form-data upload (file field
# `firmware`, optional field `md5`) streamed into the next OTA slot as it arrives, with the
# web server closed (acupdate.web.jobs).
# The file's first bytes go through ota.verify.check (magic, app descriptor, chip, size)
# before a Writer exists, so a refused file writes nothing. Then blocks go to flash as
# they complete and the image header last (ota.Writer); the MD5 is computed here, compared
# with the form's when it gives one, then the slot is read back and set to boot.
import gc
import hashlib
import time

from micropython import const

from . import core
from .source import drain

HEAD = const(256)  # first bytes kept for the checks and the app descriptor
_too_large = False  # the last refusal was for the image's size (413)


class _In:
    """The browser's socket `s` as the Source's stream. While it waits for the browser's
    bytes, the requests coming to the listening socket `ls` are answered (jobs.answer);
    silence for core.idle_ms is an OSError."""

    def __init__(self, s, ls):
        import select

        self.s = s
        self.ls = ls
        self.p = select.poll()
        self.p.register(s, select.POLLIN)
        self.p.register(ls, select.POLLIN)
        for c in core.held:  # (connections the server had accepted: jobs.answer's too)
            self.p.register(c, select.POLLIN)

    async def readinto(self, mv):
        s = self.s
        end = time.ticks_add(time.ticks_ms(), core.idle_ms)
        while True:
            left = time.ticks_diff(end, time.ticks_ms())
            if left <= 0:
                raise OSError("the browser sent nothing for %d ms" % core.idle_ms)
            ready = False
            for e in self.p.ipoll(left):
                if e[0] is s:
                    ready = True
                else:
                    if e[0] is not self.ls:
                        self.p.unregister(e[0])  # (answer() answers and closes it)
                    from .jobs import answer

                    answer(self.ls)
            if ready:  # (poll may say so with nothing to read: then read nothing, wait on)
                s.setblocking(False)
                try:
                    n = s.readinto(mv)
                finally:
                    s.settimeout(core.idle_ms / 1000)  # for the answer's writes
                if n is not None:
                    return n


def job(src, ls):
    """The upload src (a source.Source whose stream is the browser's socket now, handed
    over by acupdate.web.httpd.upload), read with the server closed (acupdate.web.jobs);
    after a success the board restarts."""
    from .jobs import Out, complete

    s = src.s
    try:
        s.settimeout(core.idle_ms / 1000)
        src.s = _In(s, ls)
        ok = complete(run(src, Out(s)))
    finally:
        s.close()
    if ok:  # the result page is out: the board restarts into the new image
        import machine

        time.sleep_ms(500)
        print("acupdate web: restarting into the new image")
        machine.reset()


async def run(src, w):
    """POST /update with the server closed (acupdate.web.jobs; httpd.upload refused the
    wrong ones and began the update): install the upload, answer the result. True when
    the new image is set to boot."""
    global _too_large
    st = core.st
    _too_large = False
    if src.expect_continue:
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await w.drain()
    code = b"200 OK"
    failed = None
    try:
        await receive(src, st, src.ctype)
    except Exception as e:  # MemoryError too: the page must say what happened
        failed = core.msg(e)
        code = b"400 Bad Request" if isinstance(e, ValueError) else b"500 Internal Server Error"
        if _too_large:
            code = b"413 Payload Too Large"
    finally:
        core.drop("multipart", "ota.writer", clear=True)  # the transfer's code leaves the heap
    try:
        await drain(src)  # (nothing left to read after a cut or a silence)
        gone = False
    except OSError:
        gone = True  # the browser is gone: nobody to answer
    from .jobs import close_port

    # A failure is published only now, with the port closed: later requests wait for the
    # web server, which is back soon (a browser that saw FAIL in the progress and asked for
    # a page got this job's 503 "an update is running").
    close_port(src.s.ls)
    if failed is not None:
        core.fail(failed)
    st.busy = False
    print("acupdate web: upload %s: %s" % (st.status, st.text))
    if not gone:
        try:
            from .pages import result

            await result(src, w, code, False)
        except OSError:
            pass  # the browser is gone: nobody to answer
    return st.status == "SUCCESS"


async def receive(src, st, ctype):
    """Read the whole form from `src`, install its image; progress and result in `st`."""
    import binascii

    from . import multipart

    mp = multipart.Multipart(src, multipart.boundary(ctype))
    want = ""
    img = None
    while True:
        part = await mp.next()
        if part is None:
            break
        if part[0] == "md5":
            want = await _field(mp, 40)
            if want and (len(want) != 32 or want.strip("0123456789abcdefABCDEF")):
                raise ValueError("the MD5 field %r is not 32 hex digits" % want)
        elif part[0] == "firmware":
            if img is not None:
                raise ValueError("the form has two 'firmware' files: send one")
            st.name = part[1] or "firmware"
            img = await _image(mp, src, st)
    if img is None:
        raise ValueError("the form has no file field 'firmware': nothing was written")
    w, h, version, label = img
    got = binascii.hexlify(h.digest()).decode()
    if want and want.lower() != got:
        raise ValueError(
            "MD5 mismatch: the file received has MD5 %s, the form gives %s; the image was "
            "not activated" % (got, want.lower())
        )
    w.finish(got)
    st.status = "SUCCESS"
    st.amount = st.size = w.done
    st.text = "%s: %d bytes, MD5 %s, version %s, written to %s and set to boot." % (
        st.name,
        w.done,
        got,
        version or "(blank)",
        label,
    )


async def _field(mp, limit):
    out = b""
    while True:
        c = await mp.data()
        if not len(c):
            return out.decode().strip()
        if len(out) + len(c) > limit:
            raise ValueError("a form field is longer than %d bytes" % limit)
        out += bytes(c)


def _slot():
    # (the slot to write, the running image's header): slots is dropped on return.
    from ..ota import slots

    try:
        run = bytearray(24)
        slots.running().readblocks(0, run)
        return slots.target(), run
    finally:
        core.drop("ota.slots")


def _check(first, size, target, run):
    # Before a byte is written: the version, or ValueError (ota.verify.check: magic, app
    # descriptor, chip; then the size). The modules are dropped on return.
    global _too_large
    from ..ota import image, verify

    try:
        chip = image.chip_id(run)
        verify.check(first, chip)
        _too_large = size > target.info()[3]
        verify.check(first, chip, size, target.info()[3])
        return image.AppDesc(first).version if len(first) >= 176 else ""
    finally:
        core.drop("ota.image", "ota.verify")


async def _image(mp, src, st):
    # (Writer, MD5 of the file, its version, slot label): the file part written to flash.
    target, run = _slot()
    head = bytearray(HEAD)
    mvh = memoryview(head)
    # At most this many file bytes can come: the rest of the body less "\r\n--boundary--".
    bound = src.left + (src.n - src.p) - len(mp.d) - 2
    st.size = bound
    st.status = "PROGRESS"
    h = hashlib.md5()
    got = 0
    w = None
    while True:
        c = await mp.data()
        end = not len(c)
        if w is None:
            t = min(len(c), HEAD - got)
            if t:
                head[got : got + t] = c[:t]
                got += t
            if got < HEAD and not end:
                continue
            if not got:
                raise ValueError("the file is empty: choose the firmware .bin")
            version = _check(mvh[:got], bound, target, run)
            gc.collect()
            from ..ota import writer

            w = writer.Writer(target, bound, core.block)
            w.write(mvh[:got])
            h.update(mvh[:got])
            c = c[t:]
        if len(c):
            w.write(c)
            h.update(c)
        st.amount = w.done
        if end:
            break
    w.size = w.done  # now known exactly: the part has ended
    return w, h, version, target.info()[4]
