"""HTTPS and basic authentication (issue 5, Transport), run by the real MicroPython on the
simulated board against the project's update server (tools/server) with certificates made
here (cryptography): the server's certificate must chain to the CA file on the board and
name the host; a wrong CA, a wrong name or a missing CA file fails clearly before a byte is
written; basic authentication goes with every request; https never redirects to http."""

from __future__ import annotations

import hashlib
import shutil
import ssl

import pytest
from conftest import install_agent, run_json
from faults import (
    DEVICE,
    HTTPS_HEAP,
    ScriptServer,
    cut,
    image_reply,
    make_certs,
    partial_reply,
    reply,
    run_updates,
)

from tools.image import build_app
from tools.server.core import UpdateServer

SIZE = 200_000


@pytest.fixture(scope="module")
def image():
    return build_app(version="2.0.0", size=SIZE, seed=13)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def catalog(tmp_path, image):
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "app.bin").write_bytes(image)
    return folder


@pytest.fixture
def agent_board(board, certs):
    install_agent(board)
    for name in ("ca.der", "ca.pem", "other.der", "bundle.pem"):
        shutil.copy(certs[name], board.fs / name)
    (board.fs / "empty.pem").write_text("not a certificate\n")
    return board


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tls_server(catalog, certs, cert="server", **kw) -> UpdateServer:
    return UpdateServer(catalog, cert=certs[f"{cert}.pem"], key=certs[f"{cert}.key"], **kw)


CATALOG_AND_UPDATE = """
import json
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config({cfg}))
out = []
try:
    names = [e.name for e in up.catalog()]
except (OSError, ValueError) as e:
    names = str(e)
out.append(names)
out.append([NAMES[up.update("app.bin")], up.error])
print(json.dumps(out))
"""


def test_https_update_with_the_ca_file_der_or_pem_bundle(agent_board, catalog, certs, image):
    with tls_server(catalog, certs) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        for ca in ("/ca.der", "/bundle.pem"):
            cfg = f"url={srv.url!r}, ca={ca!r}, reboot=False"
            got, _ = run_json(agent_board, CATALOG_AND_UPDATE.format(cfg=cfg))
            assert got == [["app.bin"], ["SUCCESS", ""]], (ca, got)
            slot = agent_board.flash.part("ota_1")
            assert agent_board.flash.boot_partition() == slot
            assert agent_board.flash.read(slot.offset, SIZE) == image
            agent_board.flash.set_boot(agent_board.flash.part("ota_0"))  # v1 again
        assert [r.path for r in srv.requests if r.path == "/app.bin"] == ["/app.bin"] * 2


@pytest.mark.parametrize(
    "ca, cert, words",
    [
        ("/other.der", "server", "The certificate is not correctly signed by the trusted CA"),
        ("/ca.der", "localhost", "The certificate Common Name (CN) does not match"),
    ],
)
def test_a_server_the_ca_does_not_vouch_for_is_refused(
    agent_board, catalog, certs, ca, cert, words
):
    with tls_server(catalog, certs, cert=cert) as srv:
        cfg = f"url={srv.url!r}, ca={ca!r}, reboot=False"
        got, _ = run_json(agent_board, CATALOG_AND_UPDATE.format(cfg=cfg))
        assert not srv.requests  # no request got through the handshake
    where = f"TLS with 127.0.0.1:{srv.port} failed: "
    assert got[0].startswith(where) and words in got[0], got
    assert got[1][0] == "FAIL" and got[1][1].startswith(where) and words in got[1][1], got
    # Nothing written: the target slot is still erased, the board boots what it ran.
    slot = agent_board.flash.part("ota_1")
    assert agent_board.flash.read(slot.offset, 4096) == b"\xff" * 4096
    assert agent_board.flash.boot_partition().label == "ota_0"


def test_ca_file_problems_are_named(agent_board, catalog, certs):
    with tls_server(catalog, certs) as srv:
        got = []
        for ca in ("/nope.der", "/empty.pem"):
            cfg = f"url={srv.url!r}, ca={ca!r}, reboot=False"
            got.append(run_json(agent_board, CATALOG_AND_UPDATE.format(cfg=cfg))[0][1])
    assert got == [
        ["FAIL", "CA file /nope.der cannot be opened (ENOENT)"],
        [
            "FAIL",
            "CA file /empty.pem holds no certificate (DER, or PEM: -----BEGIN CERTIFICATE-----)",
        ],
    ]


def test_https_settings_are_checked(agent_board):
    got, _ = run_json(
        agent_board,
        """
import json
from acupdate.config import Config
out = []
for kw in ({"url": "https://h/fw"}, {"url": "https://h/fw", "ca": ""},
           {"url": "https://h:8443", "ca": "/ca.der"}, {"url": "https://h/fw", "ca": "/c"},
           {"host": "h", "user": "a:b", "password": "x"}, {"host": "h", "user": "u"}):
    try:
        c = Config(**kw)
        out.append([c.url(), c.port, repr(c)])
    except ValueError as e:
        out.append(str(e))
print(json.dumps(out))
""",
    )
    assert got[0].startswith("https needs ca='/file' on the board")
    assert got[1] == "ca must be the path of a CA certificate file, got ''"
    assert got[2][:2] == ["https://h:8443/", 8443]
    assert got[3] == [
        "https://h:443/fw",
        443,
        "Config(url='https://h:443/fw', timeout=8, led=None, led_on=1, reboot=True, "
        "ca='/c', user=None)",
    ]
    assert got[4] == "user must be a name without ':', got 'a:b'"
    assert got[5] == "password must be a string (user 'u')"


def test_basic_authentication_over_https_and_http(agent_board, catalog, certs, image):
    for tls in (True, False):
        kw = {"user": "fleet", "password": "pw: long enough"}
        srv = tls_server(catalog, certs, **kw) if tls else UpdateServer(catalog, **kw)
        ca = "ca='/ca.der', " if tls else ""
        with srv:
            right = f"url={srv.url!r}, {ca}user='fleet', password='pw: long enough'"
            wrong = f"url={srv.url!r}, {ca}user='fleet', password='guess'"
            ok, _ = run_json(agent_board, CATALOG_AND_UPDATE.format(cfg=right + ", reboot=False"))
            bad, _ = run_json(agent_board, CATALOG_AND_UPDATE.format(cfg=wrong + ", reboot=False"))
            none, _ = run_json(
                agent_board, CATALOG_AND_UPDATE.format(cfg=f"url={srv.url!r}, {ca}reboot=False")
            )
        assert ok == [["app.bin"], ["SUCCESS", ""]], (tls, ok)
        agent_board.flash.set_boot(agent_board.flash.part("ota_0"))  # v1 again
        refused = f"Update server responds (401) to the catalog query for {srv.url.rstrip('/')}/"
        for got in (bad, none):
            assert got == [refused, ["FAIL", "Unauthorized (401) for /app.bin"]], got


def test_https_never_redirects_to_http(agent_board, certs, image):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["server.pem"], certs["server.key"])
    with ScriptServer({"/plain/app.bin": [image_reply(image)]}) as plain:
        where = f"http://127.0.0.1:{plain.port}/plain/app.bin"
        script = {"/app.bin": [reply(302, b"", {"Location": where})]}
        with ScriptServer(script, tls=ctx) as srv:
            cfg = f"url={srv.url!r}, ca='/ca.der', reboot=False"
            (got,) = run_updates(agent_board, cfg, [("app.bin", {}, SIZE)])
        assert not plain.seen
    assert got["status"] == "FAIL", got
    assert (
        got["error"]
        == f"Refused redirect from https to http://127.0.0.1:{plain.port}/plain/app.bin"
    )


def test_a_dropped_https_download_is_resumed(agent_board, certs, image):
    """A cut https download resumes with Range over a new TLS connection (the CA file read
    once). On this unix port mbedTLS takes its buffers from the MicroPython heap, in many
    small pieces, and a second handshake does not find room at the promised 64K: there the
    update ends in a clear FAIL and nothing bootable; from 72K it resumes. (On an ESP32,
    mbedTLS's buffers are on the IDF heap, outside the MicroPython heap.)"""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["server.pem"], certs["server.key"])
    full = image_reply(image)
    at = 77_777  # inside block 18: the resume asks for the block from its start
    start = at - at % 4096
    got = {}
    for heap in ("72K", HTTPS_HEAP):
        script = {
            "/app.bin": [cut(full, full.index(b"\r\n\r\n") + 4 + at), partial_reply(image, start)]
        }
        with ScriptServer(script, tls=ctx) as srv:
            cfg = f"url={srv.url!r}, ca='/ca.der', backoff=0.05, reboot=False"
            (got[heap],) = run_updates(agent_board, cfg, [("app.bin", {}, SIZE)], heap=heap)
            ranges = [s.range for s in srv.requests("/app.bin")]
        agent_board.flash.set_boot(agent_board.flash.part("ota_0"))  # v1 again
        assert ranges == ([None, f"bytes={start}-"] if heap == "72K" else [None]), (heap, got)
    assert got["72K"]["status"] == "SUCCESS" and got["72K"]["md5"] == md5(image), got
    tight = got[HTTPS_HEAP]
    assert tight["status"] == "FAIL" and not tight["header"], got
    assert tight["error"] == (
        f"Connection dropped at byte {start} of {SIZE} (body cut short: {at} of {SIZE} bytes); "
        "the heap has no room to resume"
    ), got


HEAP = """
import gc, json
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
cfg = Config({cfg})
gc.collect()
base = gc.mem_alloc()
peak = [0]
def prog(amount, size):
    gc.collect()
    peak[0] = max(peak[0], gc.mem_alloc() - base)
up = Updater(cfg)
up.on_progress = prog
st = up.update(up.catalog()[0].name)
print(json.dumps([NAMES[st], up.error, peak[0]]))
"""


def test_https_heap_figures(board, catalog, certs, image, capsys):
    """The MicroPython heap an https update pays over plain http during the transfer (the
    TLS context and socket objects; mbedTLS's own buffers are outside the MicroPython heap,
    as on the ESP32's system heap). Printed; an https update works at a 48K heap."""
    install_agent(board, mpy=True)
    shutil.copy(certs["ca.der"], board.fs / "ca.der")
    peaks = {}
    with UpdateServer(catalog) as plain, tls_server(catalog, certs) as secure:
        for label, url, ca, heap in (
            ("http", plain.url, None, "110K"),
            ("https", secure.url, "/ca.der", "110K"),
            ("https at 48K", secure.url, "/ca.der", "48K"),
        ):
            cfg = f"url={url!r}, ca={ca!r}, reboot=False"
            got, _ = run_json(board, HEAP.format(cfg=cfg), heap=heap)
            assert got[:2] in (["SUCCESS", ""], ["NOAVAIL", ""]), (label, got)
            peaks[label] = got[2]
            if got[0] == "SUCCESS":  # boot the old image again: the next one updates too
                board.flash.set_boot(board.flash.part("ota_0"))
                # and downloads: a slot that holds the image complete is only set to boot
                board.flash.erase(board.flash.part("ota_1").offset, 0x1000)
    with capsys.disabled():
        print(
            f"\nheap during the transfer over the post-Config baseline: http {peaks['http']} B,"
            f" https {peaks['https']} B (+{peaks['https'] - peaks['http']} B)"
        )
    assert peaks["https at 48K"] > 0


def test_server_sends_x_sha256_when_asked(catalog, image, certs):

    got = {}
    for sha256 in (True, False):
        got[sha256] = fetch_image(catalog, certs, sha256)
    assert got[False][:2] == (200, image) and got[False][2] is None
    status, body, sha, md5_header = got[True]
    assert status == 200 and body == image
    assert sha == hashlib.sha256(image).hexdigest() and md5_header == md5(image)


def fetch_image(catalog, certs, sha256):
    import http.client

    with tls_server(catalog, certs, sha256=sha256) as srv:
        ctx = ssl.create_default_context(cafile=str(certs["ca.pem"]))
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=10)
        conn.request("GET", "/app.bin", headers=DEVICE)
        res = conn.getresponse()
        body = res.read()
        conn.close()
    return res.status, body, res.getheader("x-SHA256"), res.getheader("x-MD5")
