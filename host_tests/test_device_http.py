"""device/acupdate/http/ and config.py under the real MicroPython, against real servers
on 127.0.0.1: header limits, bad status lines, connect errors, body framing (Content-Length,
chunked, up to EOF), cut-off bodies, timeouts, and the request actually sent."""

from __future__ import annotations

import hashlib

import pytest

from host_tests.mpy_helpers import Canned, CannedServer, call_mpy, closed_port, compile_device

# Reads the whole body through a 100-byte buffer; result: status, kept headers, length,
# chunked, body size and MD5 (the body never sits in memory whole).
GET = """
import hashlib, binascii
from acupdate.http import response as http
r = http.request("127.0.0.1", {port}, {target!r}, {headers!r}, {timeout})
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


def get(mpy_path, port, target="/x", headers=(), timeout=5, heap="40K"):
    code = GET.format(port=port, target=target, headers=list(headers), timeout=timeout)
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
    """A 1 MB header line is refused with a ValueError, not a MemoryError, in a 40K heap."""
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
    assert r[:2] == ["err", "OSError"] and "ETIMEDOUT" in r[2]


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
from acupdate.config import Config, parse_url
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
    ]
    r = call_mpy(CONFIG.format(cases=cases), path=mpy_path)
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


def test_config_from_dict(mpy_path):
    r = call_mpy(
        """
        from acupdate.config import Config
        c = Config.from_dict({"url": "http://h:9000/fw", "led": 2, "led_on": 0, "reboot": False})
        out = [c.host, c.port, c.path, c.led, c.led_on, c.reboot, c.timeout]
        try:
            Config.from_dict({"hots": "h"})
        except ValueError as e:
            out.append(str(e))
        result = out
        """,
        path=mpy_path,
    )
    assert r[0] == "ok"
    assert r[1][:7] == ["h", 9000, "fw", 2, 0, False, 8]
    assert "unknown update setting 'hots'" in r[1][7]


def test_reused_head_buffer(mpy_path):
    """One caller-owned buffer serves the heads of successive requests; too small: refused."""
    with CannedServer({"/a": Canned(body=b"A" * 3000), "/b": Canned(body=BODY)}) as s:
        r = call_mpy(
            f"""
            from acupdate.http import response as http
            import hashlib, binascii
            head = bytearray(4096)
            out = []
            for target in ("/a", "/b", "/a"):
                r = http.request("127.0.0.1", {s.port}, target, buf=head)
                h = hashlib.md5()
                blk = bytearray(512)
                while True:
                    k = r.readinto(blk)
                    h.update(memoryview(blk)[:k])
                    if k < len(blk):
                        break
                r.close()
                out.append(binascii.hexlify(h.digest()).decode())
            try:
                http.request("127.0.0.1", {s.port}, "/a", buf=bytearray(100))
            except ValueError as e:
                out.append(str(e))
            result = out
            """,
            path=mpy_path,
        )
        assert len(s.requests) == 3  # the refused one never connected
    a = hashlib.md5(b"A" * 3000).hexdigest()
    assert r == ["ok", [a, MD5, a, "head buffer needs 1026 bytes, got 100"]]
