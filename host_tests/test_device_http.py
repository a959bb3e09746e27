"""device/acupdate/http/ and config.py under the real MicroPython (48K heap, the agent's
promised heap for http), against real servers on 127.0.0.1: header, trailer and status-line
limits, bad status and header lines, connect errors, body framing (Content-Length, chunked,
up to EOF), cut-off bodies, timeouts, the Deadline that bounds every read, and the request
actually sent."""

from __future__ import annotations

import hashlib
import re
import socket

import pytest

from host_tests.mpy_helpers import (
    Canned,
    CannedServer,
    LoopbackServer,
    call_mpy,
    closed_port,
    compile_device,
)

HEAP = "48K"  # the agent's promised heap for http (README)

# Reads the whole body through a 100-byte buffer; result: status, kept headers, length,
# chunked, body size and MD5 (the body never sits in memory whole). The head goes through
# a line buffer of the smallest size the client takes (1024 + CRLF).
GET = """
import hashlib, binascii
from acupdate.http import Url, client
from acupdate.http.response import Deadline
url = Url(False, "127.0.0.1", {port}, {target!r})
deadline = Deadline({deadline}, "the test's deadline")
r = client.request(url, {lines!r}, bytearray(1026), deadline, {timeout}, {timeout})
buf = bytearray(100)
h = hashlib.md5()
n = 0
while True:
    k = r.readinto(buf)
    h.update(memoryview(buf)[:k])
    n += k
    if k < len(buf):
        break
r.close()
result = [r.status, r.headers, r.length, r.chunked, n, binascii.hexlify(h.digest()).decode()]
"""


@pytest.fixture(scope="module")
def mpy_path(tmp_path_factory):
    return compile_device(tmp_path_factory.mktemp("mpy"))


def get(mpy_path, port, target="/x", headers=(), timeout=5, deadline=60, heap=HEAP):
    """GET `target`; `headers`: (name, value) pairs, sent as the request's header lines."""
    lines = [f"{k}: {v}\r\n".encode() for k, v in headers]
    code = GET.format(port=port, target=target, lines=lines, timeout=timeout, deadline=deadline)
    return call_mpy(code, heap=heap, path=mpy_path)


BODY = bytes((i * 31 + 7) & 0xFF for i in range(10_000))
MD5 = hashlib.md5(BODY).hexdigest()


def test_content_length_body_and_headers(mpy_path):
    reply = Canned(
        headers=[("X-MD5", MD5), ("Content-Type", "application/octet-stream"), ("X-Other", "y")],
        body=BODY,
    )
    with CannedServer({"/fw/a%20b.bin": reply}) as s:
        r = get(
            mpy_path,
            s.port,
            "/fw/a%20b.bin",
            [("User-Agent", "ESP32-http-Update"), ("x-ESP32-free-space", 1572864)],
        )
        req = s.requests[0]
    assert r == [
        "ok",
        [
            200,
            {"x-md5": MD5, "content-type": "application/octet-stream", "content-length": "10000"},
            10000,
            False,
            10000,
            MD5,
        ],
    ]
    assert req.line == "GET /fw/a%20b.bin HTTP/1.1"
    assert req.headers == [
        ("Host", f"127.0.0.1:{s.port}"),
        ("Connection", "close"),
        ("User-Agent", "ESP32-http-Update"),
        ("x-ESP32-free-space", "1572864"),
    ]


def test_no_over_read_past_content_length(mpy_path):
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789EXTRA-BYTES"
    with CannedServer({"/x": Canned(raw=raw)}) as s:
        r = get(mpy_path, s.port)
    assert r[0] == "ok" and r[1][4] == 10
    assert r[1][5] == hashlib.md5(b"0123456789").hexdigest()


def test_chunked_body(mpy_path):
    with CannedServer({"/x": Canned(body=BODY, chunks=[1, 99, 100, 4000, 3, 17])}) as s:
        r = get(mpy_path, s.port)
    assert r == ["ok", [200, {"transfer-encoding": "chunked"}, -1, True, 10000, MD5]]


def test_chunked_extensions_and_trailers(mpy_path):
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    with CannedServer({"/x": Canned(raw=raw)}) as s:
        r = get(mpy_path, s.port)
    assert r[0] == "ok" and r[1][4] == 15
    assert r[1][5] == hashlib.md5(b"hello, world!!!").hexdigest()


def test_body_up_to_eof_without_length(mpy_path):
    with CannedServer({"/x": Canned(body=BODY, length=False)}) as s:
        r = get(mpy_path, s.port)
    assert r == ["ok", [200, {}, -1, False, 10000, MD5]]


def test_body_shorter_than_content_length(mpy_path):
    with CannedServer({"/x": Canned(body=BODY, cut=4321)}) as s:
        r = get(mpy_path, s.port)
    assert r[:2] == ["err", "OSError"]
    assert "cut short" in r[2] and "4321 of 10000" in r[2]


def test_chunked_body_cut_off(mpy_path):
    with CannedServer({"/x": Canned(body=BODY, chunks=[5000, 5000], cut=3000)}) as s:
        r = get(mpy_path, s.port)
    assert r[:2] == ["err", "OSError"] and "cut short" in r[2]


def test_bad_chunk_size(mpy_path):
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
    with CannedServer({"/x": Canned(raw=raw)}) as s:
        r = get(mpy_path, s.port)
    assert r[:2] == ["err", "ValueError"] and "chunk size" in r[2] and "zz" in r[2]


def test_header_line_limit(mpy_path):
    ok = Canned(headers=[("X-Long", "a" * (1024 - len("X-Long: ")))], body=b"ok")
    bad = Canned(headers=[("X-Long", "a" * (1025 - len("X-Long: ")))], body=b"ok")
    with CannedServer({"/ok": ok, "/bad": bad}) as s:
        assert get(mpy_path, s.port, "/ok")[0] == "ok"
        r = get(mpy_path, s.port, "/bad")
    assert r[:2] == ["err", "ValueError"] and "longer than 1024" in r[2]


def test_huge_header_does_not_exhaust_memory(mpy_path):
    """A 1 MB header line is refused with a ValueError, not a MemoryError, in a 48K heap."""
    raw = b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 1_000_000 + b"\r\n\r\n"
    with CannedServer({"/x": Canned(raw=raw)}) as s:
        r = get(mpy_path, s.port)
    assert r[:2] == ["err", "ValueError"] and "longer than 1024" in r[2]


def test_header_count_limit(mpy_path):
    def hdrs(n):  # Content-Length and Connection are added: n - 2 custom ones
        return [(f"X-H{i}", str(i)) for i in range(n - 2)]

    with CannedServer({"/ok": Canned(headers=hdrs(64)), "/bad": Canned(headers=hdrs(65))}) as s:
        assert get(mpy_path, s.port, "/ok")[0] == "ok"
        r = get(mpy_path, s.port, "/bad")
    assert r[:2] == ["err", "ValueError"] and "more than 64" in r[2]


@pytest.mark.parametrize(
    "raw",
    [
        b"HELLO\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"\x16\x03\x01\x02\x00\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    ],
)
def test_garbage_reply(mpy_path, raw):
    with CannedServer({"/x": Canned(raw=raw)}) as s:
        r = get(mpy_path, s.port)
    assert r[:2] == ["err", "ValueError"] and "Bad HTTP" in r[2]


@pytest.mark.parametrize("line", [b"HTTP/1.1 200", b"HTTP/1.0 200 OK", b"HTTP/1.1 200 "])
def test_status_line_forms_accepted(mpy_path, line):
    """A status line is "HTTP/1.x NNN", then a space and a reason (maybe empty), or its end."""
    with CannedServer({"/x": Canned(raw=line + b"\r\nContent-Length: 2\r\n\r\nok")}) as s:
        r = get(mpy_path, s.port)
    assert r == ["ok", [200, {"content-length": "2"}, 2, False, 2, hashlib.md5(b"ok").hexdigest()]]


@pytest.mark.parametrize(
    "line",
    [b"HTTP/1.1 2000 X", b"HTTP/1.1 20 OK", b"HTTP/1.1  200 OK", b"HTTP/1.1 200OK", b"HTTP/1. 200"],
)
def test_status_line_not_three_digits_refused(mpy_path, line):
    with CannedServer({"/x": Canned(raw=line + b"\r\n\r\n")}) as s:
        r = get(mpy_path, s.port)
    assert r == ["err", "ValueError", f"Bad HTTP status line: {line!r}"]


def test_header_line_not_utf8_refused(mpy_path):
    """A kept header (its value decoded) or any header's name that is not UTF-8 is a
    ValueError that shows the line, not a UnicodeError from deep inside."""
    kept = b"HTTP/1.1 200 OK\r\nContent-Type: caf\xe9\r\n\r\n"
    name = b"HTTP/1.1 200 OK\r\nX-\xff\xfe: 1\r\n\r\n"
    with CannedServer({"/kept": Canned(raw=kept), "/name": Canned(raw=name)}) as s:
        r_kept = get(mpy_path, s.port, "/kept")
        r_name = get(mpy_path, s.port, "/name")
    assert r_kept == [
        "err",
        "ValueError",
        "Bad HTTP header line (not UTF-8): b'Content-Type: caf\\xe9'",
    ]
    assert r_name == ["err", "ValueError", "Bad HTTP header line (not UTF-8): b'X-\\xff\\xfe: 1'"]


def test_chunked_trailer_limit(mpy_path):
    """Up to 64 trailer lines after the last chunk are read and skipped; a 65th is refused."""

    def reply(n):
        trailers = b"".join(b"X-T%d: %d\r\n" % (i, i) for i in range(n))
        return Canned(
            raw=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n" + trailers + b"\r\n"
        )

    with CannedServer({"/ok": reply(64), "/bad": reply(65)}) as s:
        ok = get(mpy_path, s.port, "/ok")
        bad = get(mpy_path, s.port, "/bad")
    assert ok[0] == "ok" and ok[1][4:] == [5, hashlib.md5(b"hello").hexdigest()]
    assert bad == [
        "err",
        "ValueError",
        "more than 64 trailer lines after the chunked body",
    ]


def test_bad_content_length(mpy_path):
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n"
    with CannedServer({"/x": Canned(raw=raw)}) as s:
        r = get(mpy_path, s.port)
    assert r[:2] == ["err", "ValueError"] and "Content-Length" in r[2] and "-5" in r[2]


def test_connection_closed_before_reply(mpy_path):
    with CannedServer({"/x": Canned(raw=b"")}) as s:
        r = get(mpy_path, s.port)
    assert r[:2] == ["err", "OSError"] and "closed" in r[2]


def test_not_modified_has_no_body(mpy_path):
    raw = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n"
    with CannedServer({"/x": Canned(raw=raw)}) as s:
        r = get(mpy_path, s.port)
    assert r[0] == "ok" and r[1][0] == 304 and r[1][4] == 0


def test_cannot_connect_names_host_and_port(mpy_path):
    port = closed_port()
    r = get(mpy_path, port)
    assert r[:2] == ["err", "OSError"]
    assert f"Cannot connect to 127.0.0.1:{port}" in r[2] and "ECONNREFUSED" in r[2]


def test_server_silent_times_out(mpy_path):
    with CannedServer({"/x": Canned(hang=True)}) as s:
        r = get(mpy_path, s.port, timeout=0.3)
    assert r == ["err", "OSError", "reading the reply failed (ETIMEDOUT)"]


def test_silent_server_ends_at_the_deadline(mpy_path):
    """A read may wait 30 s for a byte, but never past the caller's Deadline."""
    with CannedServer({"/x": Canned(hang=True)}) as s:
        r = get(mpy_path, s.port, timeout=30, deadline=2)
    assert r == ["err", "OSError", "reading the reply failed (the test's deadline of 2 s passed)"]


class EndlessServer(LoopbackServer):
    """Answers any request with a head without Content-Length, then a body that never ends:
    4 KiB blocks as fast as the client reads them, until it hangs up."""

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            data = b""
            block = b"z" * 4096
            try:
                while b"\r\n\r\n" not in data:
                    got = conn.recv(4096)
                    if not got:
                        return
                    data += got
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                while not self._stop.is_set():
                    conn.sendall(block)
            except OSError:
                return


def test_endless_body_ends_at_the_deadline(mpy_path):
    """Bytes that keep coming do not keep a reply alive past the Deadline: every read
    checks it, also one that finds bytes waiting."""
    with EndlessServer() as s:
        r = get(mpy_path, s.port, timeout=30, deadline=2)
    assert r[:2] == ["err", "OSError"], r
    m = re.fullmatch(
        r"body read failed after (\d+) bytes \(the test's deadline of 2 s passed\)", r[2]
    )
    assert m and int(m[1]) > 0, r


def test_deadline_and_helpers(mpy_path):
    r = call_mpy(
        """
        import errno
        from acupdate.http.response import Deadline, errname, find
        out = [0 < Deadline(60, "x").left() <= 60000]
        try:
            Deadline(0, "the catalog query's deadline").left()
        except OSError as e:
            out.append(str(e))
        out += [errname(OSError(errno.ECONNRESET)), errname(OSError("no route")),
                errname(OSError(-29312))]
        b = b"Name: v:w"
        out += [find(b, 58, 0, len(b)), find(b, 58, 5, len(b)), find(b, 58, 0, 4),
                find(b, 10, 0, len(b))]
        result = out
        """,
        heap=HEAP,
        path=mpy_path,
    )
    assert r == [
        "ok",
        [
            True,
            "the catalog query's deadline of 0 s passed",
            "ECONNRESET",
            "no route",
            "-29312",
            4,
            7,
            -1,
            -1,
        ],
    ]


def test_quote():
    r = call_mpy(
        """
        from acupdate.config import quote
        result = [quote("a b/ü.bin"), quote("a b/c", ""), quote("plain-1.2_x~.bin"),
                  quote("%?&#")]
        """,
        heap="200K",
    )
    assert r == ["ok", ["a%20b/%C3%BC.bin", "a%20b%2Fc", "plain-1.2_x~.bin", "%25%3F%26%23"]]


CONFIG = """
from acupdate.config import Config
out = []
for args in {cases!r}:
    try:
        c = Config(**args)
        out.append([c.host, c.port, c.path, c.catalog_target(), c.image_target("a b.bin"),
                    c.url()])
    except ValueError as e:
        out.append(["ValueError", str(e)])
result = out
"""


def test_config_forms(mpy_path):
    cases = [
        {"url": "http://10.0.0.5:8080/fw/esp32"},
        {"url": "http://updates.local"},
        {"url": "HTTP://h/"},
        {"host": "192.168.1.2"},
        {"host": "h", "path": "/images/"},
        {"url": "ftp://h/x"},
        {"url": "h:8000"},
        {"url": "http://h:80a/"},
        {"url": "http://:8000/"},
        {"host": "h", "path": "../etc"},
        {"host": "h", "port": 70000},
        {"host": ""},
        {"host": "h", "timeout": 0},
        {"host": "h", "led_on": 2},
        {"url": "http://h/fw?x=1"},
        {"url": "http://h/fw#top"},
        {"host": "h", "catalog_deadline": 0},
    ]
    r = call_mpy(CONFIG.format(cases=cases), heap=HEAP, path=mpy_path)
    assert r[0] == "ok"
    got = r[1]
    assert got[0] == [
        "10.0.0.5",
        8080,
        "fw/esp32",
        "/_catalog?op=list&path=fw/esp32",
        "/fw/esp32/a%20b.bin",
        "http://10.0.0.5:8080/fw/esp32",
    ]
    assert got[1] == [
        "updates.local",
        8000,
        ".",
        "/_catalog?op=list&path=.",
        "/a%20b.bin",
        "http://updates.local:8000/",
    ]
    assert got[2][:3] == ["h", 8000, "."]
    assert got[3][:3] == ["192.168.1.2", 8000, "."]
    assert got[4][2:5] == ["images", "/_catalog?op=list&path=images", "/images/a%20b.bin"]
    errors = [g for g in got[5:]]
    assert all(e[0] == "ValueError" for e in errors), errors
    assert "only http://" in errors[0][1]
    assert "no scheme" in errors[1][1]
    assert "'80a'" in errors[2][1]
    assert "no host" in errors[3][1]
    assert "'..'" in errors[4][1]
    assert "70000" in errors[5][1]
    assert "host is missing" in errors[6][1]
    assert "timeout" in errors[7][1]
    assert "active level" in errors[8][1]
    assert errors[9][1] == "update server URL 'http://h/fw?x=1': a query or fragment is not allowed"
    assert (
        errors[10][1] == "update server URL 'http://h/fw#top': a query or fragment is not allowed"
    )
    assert errors[11][1] == "catalog_deadline must be > 0 seconds, got 0"
    assert len(errors) == 12


def test_config_from_dict(mpy_path):
    r = call_mpy(
        """
        from acupdate.config import Config
        c = Config.from_dict({"url": "http://h:9000/fw", "led": 2, "led_on": 0, "reboot": False})
        out = [c.host, c.port, c.path, c.led, c.led_on, c.reboot, c.timeout, c.catalog_deadline]
        try:
            Config.from_dict({"hots": "h"})
        except ValueError as e:
            out.append(str(e))
        result = out
        """,
        heap=HEAP,
        path=mpy_path,
    )
    assert r[0] == "ok"
    assert r[1][:8] == ["h", 9000, "fw", 2, 0, False, 8, 60]
    assert "unknown update setting 'hots'" in r[1][8]


def test_reused_head_buffer(mpy_path):
    """One caller-owned buffer serves the heads of successive requests; too small: refused."""
    with CannedServer({"/a": Canned(body=b"A" * 3000), "/b": Canned(body=BODY)}) as s:
        r = call_mpy(
            f"""
            from acupdate.http import Url, client
            from acupdate.http.response import Deadline
            import hashlib, binascii
            head = bytearray(4096)
            deadline = Deadline(60, "the test's deadline")
            def url(target):
                return Url(False, "127.0.0.1", {s.port}, target)
            out = []
            for target in ("/a", "/b", "/a"):
                r = client.request(url(target), [], head, deadline, 5, 5)
                h = hashlib.md5()
                blk = bytearray(512)
                while True:
                    k = r.readinto(blk)
                    h.update(memoryview(blk)[:k])
                    if k < len(blk):
                        break
                r.close()
                out.append(binascii.hexlify(h.digest()).decode())
            for size in (100, 1025):
                try:
                    client.request(url("/a"), [], bytearray(size), deadline, 5, 5)
                except ValueError as e:
                    out.append(str(e))
            result = out
            """,
            heap=HEAP,
            path=mpy_path,
        )
        assert len(s.requests) == 3  # the refused ones never connected
    a = hashlib.md5(b"A" * 3000).hexdigest()
    assert r == [
        "ok",
        [
            a,
            MD5,
            a,
            "head buffer needs 1026 bytes, got 100",
            "head buffer needs 1026 bytes, got 1025",
        ],
    ]
