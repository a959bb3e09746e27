# acupdate.http: a minimal HTTP/1.1 client over a plain socket, with bounded memory.
# One request per connection (Connection: close). The status line and headers are read
# through one fixed buffer: a line over _LINE_MAX bytes or more than _MAX_HEADERS headers is
# a ValueError. The body is read with readinto(), honouring Content-Length or chunked
# transfer coding, or up to EOF when the server gives neither. https: the socket is wrapped
# by a caller's tls.SSLContext (which checks the server's certificate) after connecting.
# A deadline (time.ticks_ms() value) bounds the whole exchange, not only each read.
import socket
import time

from micropython import const

_LINE_MAX = const(1024)
_MAX_HEADERS = const(64)
_LATE = "the update's deadline passed"
# Headers kept in Response.headers (lower-case names); all others are skipped unread.
KEEP = (
    "content-length",
    "transfer-encoding",
    "content-type",
    "x-md5",
    "x-sha256",
    "location",
    "content-range",
)


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
    every read, and the connect unless `connect_timeout` is given. `buf`: a buffer of at least
    _LINE_MAX + 2 bytes to reuse for the head (else new). `tls`: a tls.SSLContext for
    https. `deadline`: a time.ticks_ms() value after which a read fails."""
    if buf is not None and len(buf) < _LINE_MAX + 2:
        raise ValueError("head buffer needs %d bytes, got %d" % (_LINE_MAX + 2, len(buf)))
    try:
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    except OSError as e:
        raise OSError(
            "Cannot connect to %s:%d: name lookup failed (%s)" % (host, port, _errname(e))
        )
    r = Response(socket.socket(ai[0], socket.SOCK_STREAM), buf)
    r.deadline = deadline
    try:
        try:
            r.sock.settimeout(connect_timeout or timeout)
            r.sock.connect(ai[-1])
            r.sock.settimeout(timeout)
        except OSError as e:
            raise OSError("Cannot connect to %s:%d (%s)" % (host, port, _errname(e)))
        if tls is not None:
            try:
                r.sock = tls.wrap_socket(r.sock, server_hostname=host)
            except (OSError, ValueError) as e:
                # mbedTLS's reason ("The certificate is not correctly signed by the
                # trusted CA"), or the error code's name
                a = e.args[0] if e.args else ""
                a = a.strip() if isinstance(a, str) else _errname(e)
                raise OSError("TLS with %s:%d failed: %s" % (host, port, a))
        r._put(b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n" % (target, host, port))
        for h in headers.items() if isinstance(headers, dict) else headers:
            r._put(h if isinstance(h, bytes) else b"%s: %s\r\n" % h)
        r._put(b"\r\n")
        r.sock.write(r._mv[: r._n])
        r._n = 0
        r._head()
    except BaseException:
        r.close()
        raise
    return r


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
        # None: readinto() raises errors at once; 0 (set by the caller): it hands out the
        # bytes read before an error, kept here and raised by the next call.
        self.err = None

    def own(self):
        """Read the rest through a buffer of the reply's own, not the caller's head buffer
        (what was read ahead moves along): for a chunked body (whose chunk lines go
        through that buffer) read into memory that holds the head buffer."""
        b = bytearray(_LINE_MAX + 2)
        k = self._n - self._p
        b[:k] = self._mv[self._p : self._n]
        self._b = b
        self._mv = memoryview(b)
        self._p = 0
        self._n = k

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _put(self, data):
        # Queue request bytes in the head buffer, sending it whenever it is full.
        mv = self._mv
        i = 0
        while i < len(data):
            k = min(len(data) - i, len(mv) - self._n)
            mv[self._n : self._n + k] = data[i : i + k]
            self._n += k
            i += k
            if self._n == len(mv):
                self.sock.write(mv)
                self._n = 0

    def _fill(self):
        # Move unread bytes to the front, then read more after them. False at EOF.
        p, n, mv = self._p, self._n, self._mv
        if p:
            mv[: n - p] = mv[p:n]
            self._n = n = n - p
            self._p = 0
        if n == len(mv):
            raise ValueError("HTTP line longer than %d bytes" % _LINE_MAX)
        if self.deadline is not None and time.ticks_diff(time.ticks_ms(), self.deadline) > 0:
            raise OSError(_LATE)
        try:
            k = self.sock.readinto(mv[n:])
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

    def _head(self):
        s, e = self._line("status line")
        line = bytes(self._mv[s:e])
        try:
            if line[:7] != b"HTTP/1." or len(line) < 12 or line[8] != 32:
                raise ValueError
            self.status = int(line[9:12])
        except ValueError:
            raise ValueError("Bad HTTP status line: %r" % line[:60])
        h = self.headers
        for _ in range(_MAX_HEADERS + 1):
            s, e = self._line("headers")
            if s == e:
                break
            c = _find(self._b, 58, s, e)
            if c <= s:
                raise ValueError("Bad HTTP header line: %r" % bytes(self._mv[s : min(e, s + 60)]))
            name = bytes(self._mv[s:c]).strip().lower().decode()
            if name in KEEP:
                h[name] = bytes(self._mv[c + 1 : e]).strip().decode()
        else:
            raise ValueError("more than %d HTTP headers" % _MAX_HEADERS)
        te = h.get("transfer-encoding")
        cl = h.get("content-length")
        if te is not None:
            if te.lower() != "chunked":
                raise ValueError("unsupported Transfer-Encoding %r" % te)
            self.chunked = True
            self._left = 0
        elif cl is not None:
            if not cl.isdigit():
                raise ValueError("Bad Content-Length %r" % cl)
            self.length = self._left = int(cl)
        if self.status in (204, 304) or self.status < 200:
            self._left = 0
            self.chunked = False
        self._done = self._left == 0 and not self.chunked

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
                    d = self.deadline
                    if d is not None and time.ticks_diff(time.ticks_ms(), d) > 0:
                        raise OSError(_LATE)
                    try:
                        k = self.sock.readinto(buf if k == want else mv[got : got + k])
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
