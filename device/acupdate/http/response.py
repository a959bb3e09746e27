# acupdate.http.response: a minimal HTTP/1.1 client over a plain socket, with bounded memory.
# One request per connection (Connection: close). The status line and headers are read
# through one fixed buffer (acupdate.http.client writes the request and reads the head, so
# that its code can leave the heap while a body is read): a line over _LINE_MAX bytes or
# more than _MAX_HEADERS headers is a ValueError. The body is read with readinto(),
# honouring Content-Length or chunked transfer coding, or up to EOF when the server gives
# neither. https: the socket is wrapped by a caller's tls.SSLContext (which checks the
# server's certificate) after connecting. A deadline (time.ticks_ms() value) bounds the
# whole exchange, not only each read.
import time

from micropython import const

_LINE_MAX = const(1024)
_LATE = "the update's deadline passed"


def _find(b, c, i, end):
    # Index of byte value c in b[i:end], or -1 (bytearray.find is not on every port).
    while i < end:
        if b[i] == c:
            return i
        i += 1
    return -1


def _errname(e):
    import errno

    code = e.args[0] if e.args else 0
    if isinstance(code, int):
        return errno.errorcode.get(code, str(code))
    return str(code)


def request(
    host,
    port,
    target,
    headers=(),
    timeout=8,
    buf=None,
    tls=None,
    deadline=None,
    connect_timeout=None,
):
    """GET `target` and read the reply's head. Returns a Response; close() it.

    `headers`: (name, value) pairs or a dict; an item may also be bytes: raw header lines,
    each ending in CRLF. Host and Connection are added here. `timeout` (seconds) bounds
    every read, and the connect unless `connect_timeout` is given. `buf`: a buffer of at
    least _LINE_MAX + 2 bytes to reuse for the head (else new). `tls`: a tls.SSLContext
    for https. `deadline`: a time.ticks_ms() value after which a read fails; with it the
    reply is read without blocking (select.poll waits for it): a read hands out what has
    come, so that neither a slow trickle nor a stall outlives the deadline or the read
    timeout, and bytes that came before a stall are never lost. (The work is
    acupdate.http.client's, loaded on the first request.)"""
    from . import client

    return client.request(host, port, target, headers, timeout, buf, tls, deadline, connect_timeout)


class Response:
    def __init__(self, sock, buf=None):
        self.sock = sock
        self.status = 0
        self.headers = {}
        self.length = -1  # Content-Length, -1 when the server sent none
        self.chunked = False
        self.received = 0  # body bytes handed out so far
        self._b = buf or bytearray(_LINE_MAX + 2)  # one line plus CRLF
        self._mv = memoryview(self._b)[: _LINE_MAX + 2]
        self._p = 0  # next unread byte in _b
        self._n = 0  # end of valid bytes in _b
        self._left = -1  # bytes left in the body (or in the current chunk); -1 = up to EOF
        self._done = False
        self.deadline = None
        self.poll = None  # with a deadline: a select.poll for the socket, once needed
        self.wait = 0  # the read timeout then, ms
        # None: readinto() raises errors at once; 0 (set by the caller): it hands out the
        # bytes read before an error, kept here and raised by the next call.
        self.err = None

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _read(self, mv):
        # One socket read into mv: 1 or more bytes, 0 at the end. With a deadline, a
        # non-blocking read that waits (poll) up to the read timeout and the deadline.
        if self.deadline is None:
            return self.sock.readinto(mv)
        while True:
            k = self.sock.readinto(mv)
            if k is not None:
                return k
            t = time.ticks_diff(self.deadline, time.ticks_ms())
            if t <= 0:
                raise OSError(_LATE)
            p = self.poll
            if p is None:  # made when first needed (httphead drops the head's)
                import select

                p = self.poll = select.poll()
                p.register(self.sock, select.POLLIN)
            idle = t > self.wait
            for _ in p.ipoll(self.wait if idle else t):
                break
            else:
                if idle:
                    import errno

                    raise OSError(errno.ETIMEDOUT)  # as a blocking socket's timeout says

    def _fill(self):
        # Move unread bytes to the front, then read more after them. False at EOF.
        p, n, mv = self._p, self._n, self._mv
        if p:
            mv[: n - p] = mv[p:n]
            self._n = n = n - p
            self._p = 0
        if n == len(mv):
            raise ValueError("HTTP line longer than %d bytes" % _LINE_MAX)
        try:
            k = self._read(mv[n:])
        except OSError as e:
            raise OSError("reading the reply failed (%s)" % _errname(e))
        if not k:
            return False
        self._n += k
        return True

    def _line(self, what):
        # (start, end) of the next line in _b without its CRLF.
        b = self._b
        while True:
            i = _find(b, 10, self._p, self._n)
            if i >= 0:
                s = self._p
                self._p = i + 1
                return s, (i - 1 if i > s and b[i - 1] == 13 else i)
            if not self._fill():
                raise OSError("connection closed in the %s (after %d bytes)" % (what, self._n))

    def _next_chunk(self):
        if self.received:  # the CRLF closing the previous chunk
            s, e = self._line("chunked body")
            if s != e:
                raise ValueError("chunk not followed by CRLF")
        s, e = self._line("chunked body")
        i = _find(self._b, 59, s, e)
        t = bytes(self._mv[s : e if i < 0 else i]).strip()
        try:
            self._left = int(t, 16)
            if self._left < 0:
                raise ValueError
        except ValueError:
            raise ValueError("Bad chunk size line %r" % t[:40])
        if not self._left:
            while True:  # trailers up to the empty line
                s, e = self._line("chunked trailer")
                if s == e:
                    break
            self._done = True

    def readinto(self, buf):
        """Fill `buf` from the body; fewer bytes than len(buf) only at its end (0 = done),
        or, when `err` is 0, before an error, which the next call raises: so that a
        caller knows the bytes received before a connection dropped (all of them when it
        was closed; a socket read that times out or is reset reports no count, so what it
        read is not counted).
        A read that fills all of `buf` at once allocates nothing."""
        e = self.err
        if e:
            raise e
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
                            "body read failed after %d bytes (%s)" % (self.received, _errname(e))
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
