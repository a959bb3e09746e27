"""A hostile or broken update server, at the agent's promised heaps (README: 48 KiB for
http, 64 KiB for https), through the public API (Updater, repl) on the simulated board
under the real MicroPython: every case ends in SUCCESS, NOAVAIL or FAIL with words, in
bounded time, and nothing bootable is left behind a failure (issue 10's campaign)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time

import pytest
from conftest import run_json
from faults import (
    HTTP_HEAP,
    HTTPS_HEAP,
    ScriptServer,
    chunked_reply,
    image_reply,
    make_certs,
    reply,
    run_updates,
)
from mpy_helpers import LoopbackServer

from tools.image import build_app

SIZE = 60_000
CATALOG = "/_catalog?op=list&path=."


@pytest.fixture(scope="module")
def image() -> bytes:
    return build_app(version="2.0.0", size=SIZE, seed=21)


def nothing_bootable(got: dict) -> None:
    assert got["status"] == "FAIL", got
    assert got["before"] == got["after"] and not got["header"], got


def forever(first: bytes, then: bytes):
    """Send `first`, then `then` again and again until the client goes (or the server
    stops)."""

    def send(conn, seen, stop):
        conn.sendall(first)
        while not stop.is_set():
            conn.sendall(then)

    return send


def test_an_endless_chunked_trailer_after_a_complete_image_fails_at_once(agent_board, image):
    """The image is whole and its MD5 right, but the chunked body's trailer never ends: a
    reply that is not HTTP. It fails at the 65th trailer line, long before the deadline."""
    body = chunked_reply(image)[: -len(b"\r\n")]  # up to "0\r\n", the trailer to come
    script = {"/app.bin": [forever(body, b"X-Padding: " + b"a" * 100 + b"\r\n")]}
    with ScriptServer(script) as srv:
        t0 = time.monotonic()
        (got,) = run_updates(
            agent_board,
            f"url={srv.url!r}, deadline=30, reboot=False",
            [("app.bin", {"size": SIZE}, SIZE)],
        )
        elapsed = time.monotonic() - t0
    nothing_bootable(got)
    assert got["error"].endswith("more than 64 trailer lines after the chunked body"), got
    assert elapsed < 15, elapsed


def test_an_endless_catalog_ends_at_the_catalog_query_s_deadline(agent_board):
    """A catalog that never ends (an endless array of "file" entries: none is kept) is cut
    at the catalog query's own deadline, with words; then the board is as it was."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n["
    script = {CATALOG: [forever(head, b'{"name": "notes.txt", "type": "file"},' * 50)]}
    code = """
import json
from acupdate.agent import Updater
from acupdate.config import Config
up = Updater(Config(url={url!r}, catalog_deadline=3))
try:
    up.catalog()
    out = "listed"
except OSError as e:
    out = e.args[0]
print(json.dumps(out))
"""
    with ScriptServer(script) as srv:
        t0 = time.monotonic()
        got, _ = run_json(agent_board, code.format(url=srv.url), heap=HTTP_HEAP)
        elapsed = time.monotonic() - t0
    assert got.startswith("body read failed after "), got  # (millions of bytes)
    assert got.endswith(" bytes (the catalog query's deadline of 3 s passed)"), got
    assert 3 <= elapsed < 15, elapsed


class DripTLSServer(LoopbackServer):
    """A TLS server whose handshake messages leave one byte every `every` seconds."""

    def __init__(self, certs: dict, every: float = 0.5):
        super().__init__()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certs["server.pem"], certs["server.key"])
        self.every = every
        self.url = f"https://127.0.0.1:{self.port}/"
        self.closed = threading.Event()  # the client went away

    def _handle(self, conn: socket.socket) -> None:
        tls_in, tls_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.ctx.wrap_bio(tls_in, tls_out, server_side=True)
        conn.settimeout(30)
        with conn:
            try:
                while True:
                    try:
                        tls.do_handshake()
                        return
                    except ssl.SSLWantReadError:
                        pass
                    for b in tls_out.read():
                        if self._stop.wait(self.every):
                            return
                        conn.sendall(bytes([b]))
                    data = conn.recv(4096)
                    if not data:
                        return
                    tls_in.write(data)
            except OSError:
                return
            finally:
                self.closed.set()


def test_a_dripped_tls_handshake_ends_at_the_update_s_deadline(agent_board, tmp_path):
    """A server that sends its TLS handshake one byte every 0.5 s: the handshake is made
    step by step without blocking, and the update's deadline (4 s) ends it."""
    certs = make_certs(tmp_path)
    (agent_board.fs / "ca.der").write_bytes(certs["ca.der"].read_bytes())
    with DripTLSServer(certs) as srv:
        t0 = time.monotonic()
        (got,) = run_updates(
            agent_board,
            f"url={srv.url!r}, ca='/ca.der', deadline=4, reboot=False",
            [("app.bin", {}, SIZE)],
        )
        elapsed = time.monotonic() - t0
        assert srv.closed.wait(10)  # the board hung up
    nothing_bootable(got)
    assert got["error"] == (
        f"TLS with 127.0.0.1:{srv.port} failed: the update's deadline of 4 s passed"
    ), got
    assert 4 <= elapsed < 20, elapsed


def test_a_redirect_is_followed_at_the_promised_heap(agent_board, image):
    """The catalog and the image both redirected, the image through the longest chain
    followed (5 hops, absolute and relative Locations). (The agent before its redesign did
    this at 48K too, but not at 40K, the heap its README promised then.)"""
    with ScriptServer({}) as srv:
        base = srv.url.rstrip("/")
        hops = [f"{base}/r1", "/r2", "r3", f"{base}/r4", "/fw/app-2.bin"]
        srv.script.update({"/app.bin": [reply(302, b"", {"Location": hops[0]})]})
        for i, loc in enumerate(hops[1:], 1):
            srv.script[f"/r{i}"] = [reply(307, b"", {"Location": loc})]
        srv.script["/fw/app-2.bin"] = [image_reply(image)]
        body = json.dumps([{"name": "app.bin", "type": "bin", "size": SIZE}]).encode()
        srv.script[CATALOG] = [reply(301, b"", {"Location": "/c"})]
        srv.script["/c"] = [reply(200, body, {"Content-Type": "application/json"})]
        code = """
import json
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config(url={url!r}, reboot=False))
n = len(up.catalog())
print(json.dumps([n, NAMES[up.update("app.bin")], up.error]))
"""
        got, _ = run_json(agent_board, code.format(url=srv.url), heap=HTTP_HEAP)
    assert got == [1, "SUCCESS", ""], got


@pytest.mark.parametrize("bins", [100, 1000])
def test_a_long_catalog_is_listed_and_its_last_image_installed(agent_board, image, bins):
    """No cap on the catalog: ota.ls() prints every row as it arrives, and update() of the
    last entry finds it by reading the catalog up to it (the catalog's size and md5 are
    the ones used: the image comes chunked, without x-MD5)."""
    import hashlib

    entries = [
        {"name": f"fw-{i:04d}.bin", "type": "bin", "date": "d", "time": "t", "size": 100 + i}
        for i in range(bins - 1)
    ]
    last = {"name": "app.bin", "type": "bin", "size": SIZE, "md5": hashlib.md5(image).hexdigest()}
    body = json.dumps([*entries, last]).encode()
    chunked = chunked_reply(image).replace(b"x-MD5", b"x-Other")
    script = {
        CATALOG: [reply(200, body, {"Content-Type": "application/json"})],
        "/app.bin": [chunked],
    }
    code = """
import acupdate.repl as ota
n = ota.ls(url={url!r})
st = ota.update("app.bin", url={url!r}, reboot=False, quiet=True)
print("RESULT", n, st)
"""
    with ScriptServer(script) as srv:
        res = agent_board.run(code.format(url=srv.url), heap=HTTP_HEAP, timeout=120)
    rows = [ln for ln in res.output.splitlines() if ln.startswith(("  fw-", "  app.bin"))]
    assert f"RESULT {bins} SUCCESS" in res.output, res.output[-2000:] + res.stderr
    assert len(rows) == bins, res.output[-2000:]
    assert agent_board.flash.boot_partition().label == "ota_1"


def test_48_entries_with_900_byte_names(agent_board, image):
    """48 bin entries whose names are about 900 bytes each (each entry nearly fills the
    catalog's 1 KiB entry buffer): the last one is installed at the promised heap."""
    names = [f"{i:02d}-" + "n" * 897 + ".bin" for i in range(48)]
    entries = [{"name": n, "type": "bin", "size": SIZE} for n in names]
    script = {
        CATALOG: [reply(200, json.dumps(entries).encode(), {"Content-Type": "application/json"})],
        "/" + names[-1]: [image_reply(image)],
    }
    code = """
import json
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config(url={url!r}, reboot=False))
e = up.find({name!r})
print(json.dumps([e is not None, NAMES[up.update({name!r})], up.error]))
"""
    with ScriptServer(script) as srv:
        got, _ = run_json(
            agent_board, code.format(url=srv.url, name=names[-1]), heap=HTTP_HEAP, timeout=120
        )
    assert got == [True, "SUCCESS", ""], got


@pytest.mark.parametrize(
    "head, words",
    [
        (b"HTTP/1.1 2000 X\r\n", "Bad HTTP status line: b'HTTP/1.1 2000 X'"),
        (b"HTTP/1.1 20 OK\r\n", "Bad HTTP status line: b'HTTP/1.1 20 OK'"),
        (
            b"HTTP/1.1 200 OK\r\nx-MD5: \xff\xfe\r\n",
            "Bad HTTP header line (not UTF-8): b'x-MD5: \\xff\\xfe'",
        ),
    ],
)
def test_a_garbled_head_is_refused_in_words(agent_board, image, head, words):
    raw = head + b"Content-Length: %d\r\n\r\n" % len(image) + image
    with ScriptServer({"/app.bin": [raw]}) as srv:
        (got,) = run_updates(agent_board, f"url={srv.url!r}, reboot=False", [("app.bin", {}, SIZE)])
    nothing_bootable(got)
    assert got["error"] == words, got


def test_an_image_esp_idf_refuses_is_named_in_words(agent_board, image):
    """An image whose MD5 is right but whose checksum byte is wrong: ESP-IDF's set_boot
    refuses it; the error says which ESP-IDF code and what it means, and the slot is not
    bootable."""
    import hashlib

    bad = bytearray(image)
    bad[-33] ^= 0xFF  # the checksum byte (the image has an appended SHA-256: 32 bytes after)
    bad = bytes(bad)
    script = {"/app.bin": [reply(200, bad, {"x-MD5": hashlib.md5(bad).hexdigest()})]}
    with ScriptServer(script) as srv:
        (got,) = run_updates(agent_board, f"url={srv.url!r}, reboot=False", [("app.bin", {}, SIZE)])
    assert got["status"] == "FAIL" and got["before"] == got["after"] == "ota_0", got
    assert got["error"].startswith(
        "ESP-IDF refused to boot the new image: ESP_ERR_OTA_VALIDATE_FAILED (-5379): "
    ), got


def test_https_cases_end_in_words_at_the_promised_heap(agent_board, image, tmp_path):
    """https at 64K: an update, and a server whose certificate no CA of the board's file
    signed (the words are mbedTLS's)."""
    certs = make_certs(tmp_path)
    (agent_board.fs / "ca.der").write_bytes(certs["ca.der"].read_bytes())
    (agent_board.fs / "other.der").write_bytes(certs["other.der"].read_bytes())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["server.pem"], certs["server.key"])
    with ScriptServer({"/app.bin": [image_reply(image)]}, tls=ctx) as srv:
        ok, bad = (
            run_updates(
                agent_board,
                f"url={srv.url!r}, ca={ca!r}, reboot=False",
                [("app.bin", {}, SIZE)],
                heap=HTTPS_HEAP,
            )[0]
            for ca in ("/ca.der", "/other.der")
        )
    assert ok["status"] == "SUCCESS", ok
    assert bad["status"] == "FAIL" and bad["error"].startswith(
        f"TLS with 127.0.0.1:{srv.port} failed: "
    ), bad
