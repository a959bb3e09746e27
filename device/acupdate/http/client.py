# acupdate.http.client: the head of an HTTP exchange for acupdate.http.response, loaded on its first
# request (and left to the caller to unload): the connection (and TLS handshake), the
# request's head, and the reply's status line and headers read through the Response's one
# line buffer (a line over 1 KiB, more than 64 headers or a garbage status line is a
# ValueError, never a memory blow-up).
import socket

from micropython import const

from .response import Response, _errname, _find

_LINE_MAX = const(1024)  # as in http
_MAX_HEADERS = const(64)
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
    """http.request()."""
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
        _put(r, b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n" % (target, host, port))
        for h in headers.items() if isinstance(headers, dict) else headers:
            _put(r, h if isinstance(h, bytes) else b"%s: %s\r\n" % h)
        _put(r, b"\r\n")
        r.sock.write(r._mv[: r._n])
        r._n = 0
        if deadline is not None:
            r.sock.setblocking(False)
            r.wait = int(timeout * 1000)
        _head(r)
        r.poll = None  # (when waits are rare, the body's reads go without it)
    except BaseException:
        r.close()
        raise
    return r


def _put(self, data):
    # Queue request bytes in the head buffer, sending it whenever it is full.
    mv = self._mv
    i = 0
    n = len(data)
    while i < n:
        k = min(n - i, len(mv) - self._n)
        # (a slice of bytes is a copy: a view when only part of `data` fits)
        mv[self._n : self._n + k] = data if k == n else memoryview(data)[i : i + k]
        self._n += k
        i += k
        if self._n == len(mv):
            self.sock.write(mv)
            self._n = 0


def _head(self):
    # The status line and the headers (KEEP's kept) of reply `self`.
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
