# acupdate.http: a minimal HTTP/1.1 client over a plain socket, with bounded memory.
# One request per connection (Connection: close). The status line and headers are read
# through one fixed buffer: a line over LINE_MAX bytes or more than MAX_HEADERS headers is
# a ValueError. The body is read with readinto(), honouring Content-Length or chunked
# transfer coding, or up to EOF when the server gives neither.
import socket

from micropython import const

LINE_MAX = const(1024)
MAX_HEADERS = const(64)
# Headers kept in Response.headers (lower-case names); all others are skipped unread.
KEEP = ("content-length", "transfer-encoding", "content-type", "x-md5", "location")


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


def connect(host, port, timeout):
    """A connected TCP socket with `timeout` (seconds) on connect and on every read."""
    try:
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    except OSError as e:
        raise OSError(
            "Cannot connect to %s:%d: name lookup failed (%s)" % (host, port, _errname(e))
        )
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(ai[-1])
    except OSError as e:
        s.close()
        raise OSError("Cannot connect to %s:%d (%s)" % (host, port, _errname(e)))
    return s


def request(host, port, target, headers=(), timeout=8, method="GET", keep=KEEP, buf=None):
    """Send one request and read the reply's head. Returns a Response; close() it.

    `headers`: (name, value) pairs or a dict; Host and Connection are added here.
    `buf`: a bytearray of at least LINE_MAX + 2 bytes to reuse for the head (else new)."""
    if buf is not None and len(buf) < LINE_MAX + 2:
        raise ValueError("head buffer needs %d bytes, got %d" % (LINE_MAX + 2, len(buf)))
    s = connect(host, port, timeout)
    r = Response(s, buf)
    try:
        r._send(method, target, host, port, headers)
        r._head(keep, method == "HEAD")
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
        self._b = buf or bytearray(LINE_MAX + 2)  # one line plus CRLF
        self._mv = memoryview(self._b)[: LINE_MAX + 2]
        self._p = 0  # next unread byte in _b
        self._n = 0  # end of valid bytes in _b
        self._left = -1  # bytes left in the body (or in the current chunk); -1 = up to EOF
        self._done = False

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _put(self, data):
        # Queue bytes for sending through the line buffer; b"" sends what is queued.
        b = self._mv
        i = 0
        while True:
            k = min(len(data) - i, len(b) - self._n)
            b[self._n : self._n + k] = data[i : i + k]
            self._n += k
            i += k
            if self._n == len(b) or not data:
                self.sock.write(b[: self._n])
                self._n = 0
            if i == len(data):
                return

    def _send(self, method, target, host, port, headers):
        put = self._put
        put(method.encode())
        put(b" ")
        put(target.encode())
        put(b" HTTP/1.1\r\nHost: ")
        put(host.encode())
        put(b":%d\r\nConnection: close\r\n" % port)
        if isinstance(headers, dict):
            headers = headers.items()
        for name, value in headers:
            put(name.encode())
            put(b": ")
            put(str(value).encode())
            put(b"\r\n")
        put(b"\r\n")
        put(b"")  # flush

    def _fill(self):
        # Move unread bytes to the front, then read more after them. False at EOF.
        p, n, mv = self._p, self._n, self._mv
        if p:
            mv[: n - p] = mv[p:n]
            self._n = n = n - p
            self._p = 0
        if n == len(mv):
            raise ValueError("HTTP line longer than %d bytes" % LINE_MAX)
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

    def _head(self, keep, head_only):
        s, e = self._line("status line")
        line = bytes(self._mv[s:e])
        if not line.startswith(b"HTTP/1.") or len(line) < 12 or line[8] != 32:
            raise ValueError("Bad HTTP status line: %r" % line[:60])
        try:
            self.status = int(line[9:12])
        except ValueError:
            raise ValueError("Bad HTTP status line: %r" % line[:60])
        count = 0
        while True:
            s, e = self._line("headers")
            if s == e:
                break
            count += 1
            if count > MAX_HEADERS:
                raise ValueError("more than %d HTTP headers" % MAX_HEADERS)
            c = _find(self._b, 58, s, e)
            if c <= s:
                raise ValueError("Bad HTTP header line: %r" % bytes(self._mv[s : min(e, s + 60)]))
            name = bytes(self._mv[s:c]).strip().lower().decode()
            if name in keep or name in ("content-length", "transfer-encoding"):
                self.headers[name] = bytes(self._mv[c + 1 : e]).strip().decode()
        te = self.headers.get("transfer-encoding")
        cl = self.headers.get("content-length")
        if te is not None:
            if te.lower() != "chunked":
                raise ValueError("unsupported Transfer-Encoding %r" % te)
            self.chunked = True
            self._left = 0
        elif cl is not None:
            if not cl.isdigit():
                raise ValueError("Bad Content-Length %r" % cl)
            self.length = self._left = int(cl)
        if head_only or self.status in (204, 304) or 100 <= self.status < 200:
            self._left = 0
            self.chunked = False
        if self._left == 0 and not self.chunked:
            self._done = True

    def _next_chunk(self):
        if self.received:  # the CRLF closing the previous chunk
            s, e = self._line("chunked body")
            if s != e:
                raise ValueError("chunk not followed by CRLF")
        s, e = self._line("chunked body")
        i = _find(self._b, 59, s, e)
        t = bytes(self._mv[s : e if i < 0 else i]).strip()
        try:
            size = int(t, 16)
        except ValueError:
            raise ValueError("Bad chunk size line %r" % t[:40])
        if size < 0:
            raise ValueError("Bad chunk size line %r" % t[:40])
        if size:
            self._left = size
            return
        while True:  # trailers up to the empty line
            s, e = self._line("chunked trailer")
            if s == e:
                break
        self._done = True

    def readinto(self, buf):
        """Fill `buf` from the body; fewer bytes than len(buf) only at its end (0 = done)."""
        mv = memoryview(buf)
        want = len(mv)
        got = 0
        while got < want and not self._done:
            if self.chunked and self._left == 0:
                self._next_chunk()
                continue
            k = want - got
            if 0 <= self._left < k:
                k = self._left
            avail = self._n - self._p
            if avail:
                if k > avail:
                    k = avail
                mv[got : got + k] = self._mv[self._p : self._p + k]
                self._p += k
            else:
                try:
                    k = self.sock.readinto(mv[got : got + k])
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
                    raise OSError("body cut short: %d of %d bytes" % (self.received, self.length))
            got += k
            self.received += k
            if self._left > 0:
                self._left -= k
                if self._left == 0 and not self.chunked:
                    self._done = True
        return got
