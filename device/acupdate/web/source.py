# acupdate.web.source: a request read through one small buffer: the head's lines, then the body,
# never past its Content-Length. The stream is asyncio's (acupdate.web.httpd) or, while the
# web server has stepped aside for an update, the browser's own socket (acupdate.web.jobs):
# the same code reads an upload either way.
from micropython import const

DRAIN_MAX = const(4194304)  # an upload larger than this is refused before its body is read
DROP_MAX = const(16777216)  # a refused body up to this is read and dropped before answering


def find(b, sub, s, e):
    """Index of `sub` in b[s:e] (a bytearray), or -1."""
    try:
        return b.find(sub, s, e)
    except AttributeError:  # a port whose bytearray has no find(): search a copy
        i = bytes(memoryview(b)[s:e]).find(sub)
        return i + s if i >= 0 else -1


class Source:
    """A request, read from `stream` (its coroutine readinto()) through the bytearray `buf`:
    lines of the head (its fields below, set by acupdate.web.httpd.conn), then at most the
    body's Content-Length (`left`: bytes still to come)."""

    def __init__(self, stream, buf):
        self.task = None  # the asyncio task reading (for httpd.watch)
        self.t = None  # when the read under way began (None: not reading)
        self.t0 = 0  # when the request's first byte was read (httpd.conn sets it)
        # why watch() cancelled the read: idle_ms in ms, silent that long; its negative, the
        # request's head not complete that long after its first byte
        self.late = 0
        self.s = stream
        self.b = buf
        self.mv = memoryview(buf)
        self.p = 0  # next unread byte in buf
        self.n = 0  # end of the bytes in buf
        self.length = -1  # the body's Content-Length, once known
        self.left = -1  # -1: no limit yet (head)
        self.method = b""
        self.path = b""  # without its query
        self.ctype = ""  # Content-Type
        self.expect_continue = False  # the client waits for "100 Continue" to send its body

    async def fill(self):
        """Move the unread bytes to the front, read more after them. False at the end of
        the body (or of the stream before one); OSError when the body is cut off or the
        browser stays silent."""
        import time

        p, n, mv = self.p, self.n, self.mv
        if p:
            mv[: n - p] = mv[p:n]
            self.n = n = n - p
            self.p = 0
        room = len(mv) - n
        if self.left == 0 or not room:
            return False
        if 0 < self.left < room:
            room = self.left
        self.t = time.ticks_ms()
        try:
            k = await self.s.readinto(mv[n : n + room])
        except BaseException as e:  # noqa: B036 (asyncio's CancelledError is not an Exception)
            self.left = 0  # the stream failed: nothing more is read from it
            if self.late < 0:  # httpd.watch cancelled it
                raise OSError("the request head took more than %d ms" % -self.late)
            if self.late:
                raise OSError("the browser sent nothing for %d ms" % self.late)
            raise e
        finally:
            self.t = None
        if not k:
            if self.left > 0:
                self.left, left = 0, self.left
                raise OSError(
                    "upload cut off: %d of %d bytes came" % (self.length - left, self.length)
                )
            return False
        self.n += k
        if self.left > 0:
            self.left -= k
        return True

    async def line(self):
        """(start, end) in buf of the next line, without its LF or CR LF."""
        b = self.b
        while True:
            i = find(b, b"\n", self.p, self.n)
            if i >= 0:
                s = self.p
                self.p = i + 1
                return s, (i - 1 if i > s and b[i - 1] == 13 else i)
            if self.n - self.p == len(b):
                raise ValueError("a request line is longer than %d bytes" % (len(b) - 2))
            if not await self.fill():
                raise ValueError("the request ends inside a line")

    async def text(self):
        """The next line as bytes, without its LF or CR LF; a line longer than the buffer
        is cut to the buffer's length and ends with b"..." (the rest is read and dropped)."""
        try:
            s, e = await self.line()
            return bytes(self.mv[s:e])
        except ValueError:
            if self.n - self.p != len(self.b):  # (not a long line: the request ended)
                raise
        b, k = self.b, self.n
        while k > self.p and b[k - 1] & 0xC0 == 0x80:  # not in the middle of a UTF-8 character
            k -= 1
        if k > self.p and b[k - 1] >= 0xC0:
            k -= 1
        h = bytes(self.mv[self.p : k]) + b"..."
        while True:
            self.p = self.n
            if not await self.fill():
                raise ValueError("the request ends inside a line")
            i = find(self.b, b"\n", self.p, self.n)
            if i >= 0:
                self.p = i + 1
                return h


async def drain(src, cap=DROP_MAX):
    """Read and drop the rest of the body (of a refused request: so that the browser gets
    the answer; unless it is over `cap` bytes). OSError if it is cut off."""
    if src.length <= cap:
        src.p = src.n
        while await src.fill():
            src.p = src.n
