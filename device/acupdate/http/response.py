# acupdate.http.response: an HTTP reply's body, read with readinto() through one fixed line
# buffer (Content-Length, chunked transfer coding, or up to EOF), and the Deadline that
# bounds every read. acupdate.http.client opens the reply and reads its head.
import select
import time

from micropython import const

LINE_MAX = const(1024)  # longest head line or chunk line; the line buffer holds it + CRLF
_TRAILERS = const(64)  # trailer lines after a chunked body, at most


class Deadline:
    """A point in time `seconds` from now that a piece of work must not outlive; `what`
    names it in errors ("the update's deadline")."""

    def __init__(self, seconds, what):
        self.seconds = seconds
        self.what = what
        self.at = time.ticks_add(time.ticks_ms(), int(seconds * 1000))

    def left(self):
        """Milliseconds left, or OSError when none are."""
        ms = time.ticks_diff(self.at, time.ticks_ms())
        if ms <= 0:
            raise OSError("%s of %s s passed" % (self.what, self.seconds))
        return ms


def errname(e):
    """The errno name of OSError `e` ('ECONNRESET'), or its text."""
    import errno

    code = e.args[0] if e.args else 0
    if isinstance(code, int):
        return errno.errorcode.get(code, str(code))
    return str(code)


def find(b, c, i, end):
    """Index of byte value c in b[i:end], or -1 (bytearray.find is not on every port)."""
    while i < end:
        if b[i] == c:
            return i
        i += 1
    return -1


class Response:
    """A reply on non-blocking socket `sock`: `status`, `headers` (the kept ones, lower-case
    names), `length` (Content-Length, -1 without), `chunked`, `received` (body bytes handed
    out). Every socket read waits at most `wait` ms for bytes (then ETIMEDOUT) and never
    past the Deadline `deadline`, however the bytes come: a trickle cannot outlive it.
    `buf`: the line buffer (LINE_MAX + 2 bytes at least)."""

    def __init__(self, sock, buf, deadline, wait):
        # Every attribute is set here, so that the instance's attribute table is made at its
        # full size now, while the request's heap is still in one piece: grown later, while
        # the head is read, it needed a new 192- or 272-byte table at the tightest moment of
        # an update (bench_agent: the REPL flow's least heap 40.0-40.5 KiB, by run; 40.0 now).
        self.sock = sock
        self.deadline = deadline
        self.wait = wait
        self.headers = {}
        self._mv = memoryview(buf)[: LINE_MAX + 2]
        self.status = 0
        self.length = -1
        self.chunked = False
        self.received = 0
        self.poll = None  # a select.poll for the socket, made when a read first waits
        # None: readinto() raises an error at once; 0 (the caller sets it): it hands out the
        # bytes read before an error, which the next call raises (kept here).
        self.err = None
        self._p = 0  # next unread byte in _mv
        self._n = 0  # end of the bytes in _mv
        self._left = -1  # bytes left in the body or the current chunk; -1: up to EOF
        self._done = False

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def own_buffer(self):
        """Give the reply a line buffer of its own for the rest, the bytes read ahead moved
        along: the buffer it was opened with (a part of the caller's) is then free."""
        b = bytearray(LINE_MAX + 2)
        k = self._n - self._p
        b[:k] = self._mv[self._p : self._n]
        self._mv = memoryview(b)
        self._p = 0
        self._n = k

    def wait_ready(self, event):
        """Wait until the socket is ready for `event` (select.POLLIN or POLLOUT): at most
        `wait` ms (then ETIMEDOUT), never past the deadline (then its OSError)."""
        left = self.deadline.left()
        p = self.poll
        if p is None:
            p = self.poll = select.poll()
            p.register(self.sock)
        p.modify(self.sock, event)
        idle = left > self.wait
        for _ in p.ipoll(self.wait if idle else left):
            return
        if idle:
            import errno

            raise OSError(errno.ETIMEDOUT)  # as a blocking socket's timeout says
        self.deadline.left()  # raises: the deadline has passed

    def _read(self, mv):
        # One socket read into mv: 1 or more bytes, or 0 at the end.
        while True:
            self.deadline.left()  # a server that never stops sending is bounded too
            k = self.sock.readinto(mv)
            if k is not None:
                return k
            self.wait_ready(select.POLLIN)

    def fill(self):
        """Move the unread bytes to the front of the line buffer and read more after them;
        False at the end of the stream."""
        p, n, mv = self._p, self._n, self._mv
        if p:
            mv[: n - p] = mv[p:n]
            self._n = n = n - p
            self._p = 0
        if n == len(mv):
            raise ValueError("HTTP line longer than %d bytes" % LINE_MAX)
        try:
            k = self._read(mv[n:])
        except OSError as e:
            raise OSError("reading the reply failed (%s)" % errname(e))
        if not k:
            return False
        self._n += k
        return True

    def line(self, what):
        """(start, end) in the line buffer of the next line, without its CRLF; `what`
        names the part of the reply for an error ("headers")."""
        mv = self._mv
        while True:
            i = find(mv, 10, self._p, self._n)
            if i >= 0:
                s = self._p
                self._p = i + 1
                return s, (i - 1 if i > s and mv[i - 1] == 13 else i)
            if not self.fill():
                raise OSError("connection closed in the %s (after %d bytes)" % (what, self._n))

    def text(self, s, e):
        """Line buffer bytes s..e as bytes."""
        return bytes(self._mv[s:e])

    def _next_chunk(self):
        if self.received:  # the CRLF that closes the previous chunk
            s, e = self.line("chunked body")
            if s != e:
                raise ValueError("chunk not followed by CRLF")
        s, e = self.line("chunked body")
        i = find(self._mv, 59, s, e)  # ';' starts chunk extensions
        t = self.text(s, e if i < 0 else i).strip()
        try:
            self._left = int(t, 16)
            if self._left < 0:
                raise ValueError
        except ValueError:
            raise ValueError("Bad chunk size line %r" % t[:40])
        if not self._left:
            for _ in range(_TRAILERS + 1):  # trailers up to the empty line
                s, e = self.line("chunked trailer")
                if s == e:
                    self._done = True
                    return
            raise ValueError("more than %d trailer lines after the chunked body" % _TRAILERS)

    def readinto(self, buf):
        """Fill `buf` from the body; fewer bytes than len(buf) only at its end (0 = done),
        or, when `err` is 0, before an error, which the next call raises: so that the
        caller knows the bytes received before a connection dropped. A read that fills all
        of `buf` at once allocates nothing."""
        if self.err:
            raise self.err
        want = len(buf)
        got = 0
        mv = None  # a view of buf, made once a read lands at an offset
        try:
            while got < want and not self._done:
                if self.chunked and self._left == 0:
                    self._next_chunk()
                    continue
                k = want - got
                if 0 <= self._left < k:
                    k = self._left
                avail = self._n - self._p
                if (avail or k < want) and mv is None:
                    mv = memoryview(buf)
                if avail:
                    if k > avail:
                        k = avail
                    mv[got : got + k] = self._mv[self._p : self._p + k]
                    self._p += k
                else:
                    try:
                        k = self._read(buf if k == want else mv[got : got + k])
                    except OSError as e:
                        raise OSError(
                            "body read failed after %d bytes (%s)" % (self.received, errname(e))
                        )
                    if not k:
                        if self._left < 0:
                            self._done = True
                            break
                        if self.chunked:
                            raise OSError(
                                "body cut short inside a chunk after %d bytes" % self.received
                            )
                        raise OSError(
                            "body cut short: %d of %d bytes" % (self.received, self.length)
                        )
                got += k
                self.received += k
                if self._left > 0:
                    self._left -= k
                    if self._left == 0 and not self.chunked:
                        self._done = True
        except OSError as x:
            if not got or self.err is None:
                raise
            self.err = x
        return got
