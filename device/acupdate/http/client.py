# acupdate.http.client: one HTTP/1.1 GET (Connection: close) of a Url: connect, the TLS
# handshake for https, the request's head, and the reply's status line and headers, read
# through the Response's line buffer (a line over 1 KiB, more than 64 headers or a status
# line that is not "HTTP/1.x NNN" is a ValueError). Every step, the handshake too, waits
# without blocking and never past the caller's Deadline. The body is the Response's to
# read.
import select
import socket

from micropython import const

from .response import LINE_MAX, Response, errname, find

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


def request(url, lines, buf, deadline, timeout, connect_timeout, context=None):
    """GET Url `url` and read the reply's head; the Response, whose
    body is still to read (close() it).

    `lines`: the request's other header lines (bytes, each ending in CRLF; Host and
    Connection are added here). `buf`: the line buffer (LINE_MAX + 2 bytes at least, also
    used to send the request). `deadline`: a Deadline for every step. `timeout`: seconds
    a read may wait for a byte; `connect_timeout`: for the connect. `context`: a
    tls.SSLContext for https (acupdate.http.tls)."""
    if len(buf) < LINE_MAX + 2:
        raise ValueError("head buffer needs %d bytes, got %d" % (LINE_MAX + 2, len(buf)))
    where = "%s:%d" % (url.host, url.port)
    try:
        ai = socket.getaddrinfo(url.host, url.port, 0, socket.SOCK_STREAM)[0]
    except OSError as e:
        raise OSError("Cannot connect to %s: name lookup failed (%s)" % (where, errname(e)))
    r = Response(socket.socket(ai[0], socket.SOCK_STREAM), buf, deadline, int(timeout * 1000))
    try:
        try:
            r.sock.settimeout(min(connect_timeout, deadline.left() / 1000))
            r.sock.connect(ai[-1])
        except OSError as e:
            raise OSError("Cannot connect to %s (%s)" % (where, errname(e)))
        r.sock.setblocking(False)
        if context is not None:
            # The handshake happens in the first write, step by step: see _send.
            r.sock = context.wrap_socket(
                r.sock, server_hostname=url.host, do_handshake_on_connect=False
            )
        head = b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (url.target, where)
        try:
            _send(r, head)
            for h in lines:
                _send(r, h)
            _send(r, b"\r\n")
            _flush(r)
        except (OSError, ValueError) as e:
            if context is None:
                raise OSError("Sending the request to %s failed (%s)" % (where, errname(e)))
            # mbedTLS's reason ("The certificate is not correctly signed by the trusted
            # CA"), or the error code's name
            a = e.args[0] if e.args else ""
            raise OSError(
                "TLS with %s failed: %s" % (where, a.strip() if isinstance(a, str) else errname(e))
            )
        _head(r)
    except BaseException:
        r.close()
        raise
    return r


def _send(r, data):
    # Queue request bytes in the line buffer, sending it whenever it is full.
    mv = r._mv
    i = 0
    n = len(data)
    while i < n:
        k = min(n - i, len(mv) - r._n)
        # (a slice of bytes is a copy: a view when only part of `data` fits)
        mv[r._n : r._n + k] = data if k == n else memoryview(data)[i : i + k]
        r._n += k
        i += k
        if r._n == len(mv):
            _flush(r)


def _flush(r):
    # Write the queued bytes. A write that cannot go yet (the socket's buffer is full, or a
    # TLS handshake waits for the server) returns None: wait, within the deadline, then
    # try again.
    mv = r._mv
    sent = 0
    while sent < r._n:
        k = r.sock.write(mv[sent : r._n])
        if k is None:
            r.wait_ready(select.POLLIN | select.POLLOUT)
        else:
            sent += k
    r._n = 0


def _head(r):
    # The status line and the headers (KEEP's kept) of reply `r`.
    s, e = r.line("status line")
    line = r.text(s, e)
    # "HTTP/1.x NNN" then a space and a reason, or nothing: three digits, no more.
    if (
        line[:7] != b"HTTP/1."
        or len(line) < 12
        or line[8] != 32
        or not line[9:12].isdigit()
        or (len(line) > 12 and line[12] != 32)
    ):
        raise ValueError("Bad HTTP status line: %r" % line[:60])
    r.status = int(line[9:12])
    h = r.headers
    for _ in range(_MAX_HEADERS + 1):
        s, e = r.line("headers")
        if s == e:
            break
        c = find(r._mv, 58, s, e)  # ':'
        if c <= s:
            raise ValueError("Bad HTTP header line: %r" % r.text(s, min(e, s + 60)))
        try:
            name = r.text(s, c).strip().lower().decode()
            if name in KEEP:
                h[name] = r.text(c + 1, e).strip().decode()
        except UnicodeError:
            raise ValueError("Bad HTTP header line (not UTF-8): %r" % r.text(s, min(e, s + 60)))
    else:
        raise ValueError("more than %d HTTP headers" % _MAX_HEADERS)
    _framing(r)


def _framing(r):
    # The body's framing, from the kept headers.
    te = r.headers.get("transfer-encoding")
    cl = r.headers.get("content-length")
    if te is not None:
        if te.lower() != "chunked":
            raise ValueError("unsupported Transfer-Encoding %r" % te)
        r.chunked = True
        r._left = 0
    elif cl is not None:
        if not cl.isdigit():
            raise ValueError("Bad Content-Length %r" % cl)
        r.length = r._left = int(cl)
    if r.status in (204, 304) or r.status < 200:
        r._left = 0
        r.chunked = False
    r._done = r._left == 0 and not r.chunked
