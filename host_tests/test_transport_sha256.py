"""SHA-256 beyond MD5 (issue 5, Transport), run by the real MicroPython on the simulated
board: the server's x-SHA256 header and the caller's sha256= are checked over the whole
image, chunk by chunk like the MD5, before its header is written; a mismatch leaves
nothing bootable. The project's update server sends x-SHA256 (see test_transport_https)."""

from __future__ import annotations

import hashlib

import pytest
from conftest import install_agent
from faults import ScriptServer, image_reply, run_updates

from tools.image import build_app
from tools.server.core import UpdateServer

SIZE = 90_000


@pytest.fixture(scope="module")
def image():
    return build_app(version="2.0.0", size=SIZE, seed=19)


@pytest.fixture
def agent_board(board):
    install_agent(board)
    return board


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_sha256_from_the_header_or_the_caller(agent_board, image):
    good = sha(image)
    other = sha(b"other")
    script = {
        "/hdr.bin": [image_reply(image, **{"x-SHA256": good.upper()})],
        "/plain.bin": [image_reply(image)],
        "/badhdr.bin": [image_reply(image, **{"x-SHA256": other})],
        "/both.bin": [image_reply(image, **{"x-SHA256": good})],
        "/junk.bin": [image_reply(image, **{"x-SHA256": "12ab"})],
    }
    updates = [
        ("hdr.bin", {}, SIZE),
        ("plain.bin", {"sha256": good}, SIZE),
        ("badhdr.bin", {}, SIZE),
        ("plain.bin", {"sha256": other}, SIZE),
        ("both.bin", {"sha256": other}, SIZE),
        ("junk.bin", {}, SIZE),
        ("plain.bin", {"sha256": "xyz"}, SIZE),
    ]
    with ScriptServer(script) as srv:
        got = run_updates(agent_board, f"url={srv.url!r}, reboot=False", updates)
    ok = got[:2]
    for g in ok:
        assert g["status"] == "SUCCESS" and g["md5"] == hashlib.md5(image).hexdigest(), got
    bad = got[2:]
    assert [g["error"] for g in bad] == [
        f"SHA-256 Check Failed: image {good}, expected {other}",
        f"SHA-256 Check Failed: image {good}, expected {other}",
        f"x-SHA256 header {good} differs from the expected {other}",
        "Bad x-SHA256 header '12ab': expected 64 hex digits",
        "sha256 must be 64 hex digits, got 'xyz'",
    ]
    for g in bad:
        # The image header is held back until both hashes match: nothing bootable, and
        # the board still boots what it ran before (ota_1 since the first success).
        assert g["status"] == "FAIL" and g["before"] == g["after"] and not g["header"], g


def test_sha256_of_the_update_server(agent_board, image, tmp_path):
    """UpdateServer(sha256=True) sends x-SHA256: the agent checks it against the caller's
    (a mismatch is refused before a byte is written) and the image."""
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "app.bin").write_bytes(image)
    other = sha(b"other")
    with UpdateServer(tmp_path / "c", sha256=True) as srv:
        got = run_updates(
            agent_board,
            f"url={srv.url!r}, reboot=False",
            [("app.bin", {"sha256": sha(image)}, SIZE), ("app.bin", {"sha256": other}, SIZE)],
        )
        sent = [r for r in srv.requests if r.path == "/app.bin"]
    assert got[0]["status"] == "SUCCESS", got
    assert got[1]["status"] == "FAIL", got
    assert got[1]["error"] == f"x-SHA256 header {sha(image)} differs from the expected {other}"
    assert [r.status for r in sent] == [200, 200]
