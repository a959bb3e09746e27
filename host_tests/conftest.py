"""Shared fixtures: simulated boards with real images, run by the real MicroPython."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from signing import Key, make_key

from tools import devicepkg
from tools.board import Board
from tools.image import build_app


@pytest.fixture(scope="session")
def image_v1() -> bytes:
    return build_app(version="1.0.0", size=200_000, seed=1)


@pytest.fixture(scope="session")
def image_v2() -> bytes:
    return build_app(version="2.0.0", size=300_000, seed=2)


@pytest.fixture(scope="session")
def sign_keys(tmp_path_factory) -> dict[str, Key]:
    """Three RSA-3072 signing keys, A, B and C, made by espsecure for this test run."""
    folder = tmp_path_factory.mktemp("keys")
    return {name: make_key(folder, name) for name in "ABC"}


@pytest.fixture(scope="session")
def ec_keys(tmp_path_factory) -> dict[str, Key]:
    """ECDSA signing keys made by espsecure: P256 (the one the board checks), P192, P384."""
    folder = tmp_path_factory.mktemp("ec-keys")
    return {f"P{n}": make_key(folder, f"P{n}", f"ecdsa{n}") for n in (256, 192, 384)}


@pytest.fixture
def board(tmp_path, image_v1) -> Board:
    """A fresh 4 MiB board running v1 from ota_0, otadata erased."""
    return Board.create(tmp_path / "board", image_v1)


@pytest.fixture
def agent_board(board) -> Board:
    """A fresh board (see board) with the agent installed at /lib/acupdate as tools.deploy
    installs it: compiled to .mpy (the promised heaps are for .mpy)."""
    install_agent(board, mpy=True)
    return board


def run_json(board: Board, code: str, **kw):
    """Run device code that prints one JSON line last; returns (value, RunResult)."""
    res = board.run(code, **kw)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    if res.returncode != 0 or not lines:
        raise AssertionError(
            f"device code failed (exit {res.returncode}):\n{res.output}{res.stderr}"
        )
    return json.loads(lines[-1]), res


# Device-side helper: write a file from the board filesystem into a partition,
# one erased 4096-byte block at a time (the tail block padded with 0xFF).
WRITE_FILE = """
def write_file(part, name):
    buf = bytearray(4096)
    mv = memoryview(buf)
    blk = 0
    with open(name, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            for i in range(n, 4096):
                buf[i] = 0xFF
            part.writeblocks(blk, buf)
            blk += 1
    return blk
"""


# The boot.py of a board that joins the lab's Wi-Fi, as a user's boot.py does: the
# simulated board, as a real one, has no network (no socket connects) until then.
JOIN_BOOT = """import network
network.WLAN(network.STA_IF).active(True)
network.WLAN(network.STA_IF).connect({ssid!r}, {key!r})
del network
"""


def install_agent(board: Board, mpy: bool = False) -> None:
    """Put device/acupdate on the board at /lib/acupdate, as .py or as .mpy compiled as the
    deploy compiles it (tools.devicepkg), and a boot.py that joins the board's Wi-Fi when it
    has none."""
    if not (board.fs / "boot.py").exists():
        ssid, key = next(iter(board.cfg["wifi"].items()))
        (board.fs / "boot.py").write_text(JOIN_BOOT.format(ssid=ssid, key=key))
    devicepkg.build(board.fs / "lib", mpy=mpy)


MPREMOTE = str(Path(sys.executable).parent / "mpremote")


def mpremote(sb, *args: str, timeout: float = 60) -> str:
    """Run the real mpremote against a SerialBoard; its stdout (fails the test if it fails)."""
    res = subprocess.run(
        [MPREMOTE, "connect", sb.device, *args], capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, f"mpremote {args} failed: {res.stdout}{res.stderr}"
    return res.stdout
