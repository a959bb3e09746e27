"""The update agent against real servers on 127.0.0.1, every reply of the protocol
(../shared/reference/protocol.md section 3), run by the real MicroPython on the board.

Where the update fails, the running image and the boot slot are untouched; where the
image is refused before writing, the target slot is still erased.
"""

from __future__ import annotations

import hashlib

import pytest
from conftest import install_agent, run_json
from mpy_helpers import Canned, CannedServer, closed_port
from test_device_ota import assert_nothing_new_boots, faulty_byte

from tools.board import Board, layout
from tools.image import build_app, build_merged
from tools.server.core import UpdateServer

UPDATE = """
import json
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config(url="{url}"))
st = up.update("{name}")
print(json.dumps([NAMES[st], up.error]))
"""


def snapshot(board: Board):
    ota0 = board.flash.part("ota_0")
    ota1 = board.flash.part("ota_1")
    return (
        hashlib.md5(board.flash.read(ota0.offset, ota0.size)).hexdigest(),
        board.flash.boot_partition().label,
        board.flash.read(ota1.offset, ota1.size) == b"\xff" * ota1.size,
    )


def update_via(board, url, name="app.bin"):
    got, _ = run_json(board, UPDATE.format(url=url, name=name))
    return got


def canned(board, reply: Canned, name="app.bin"):
    with CannedServer({"/" + name: reply}) as srv:
        got = update_via(board, f"http://127.0.0.1:{srv.port}/", name)
    return got, srv.requests


def test_update_from_our_server_sends_the_exact_esp32_headers(
    agent_board, image_v1, image_v2, tmp_path
):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "app.bin").write_bytes(image_v2)
    with UpdateServer(tmp_path / "cat") as srv:
        got = update_via(agent_board, srv.url)
        req = [r for r in srv.requests if r.path == "/app.bin"][0]
        port = srv.port
    assert got == ["SUCCESS", ""]
    assert req.status == 200
    # Every header the board sends, in its order and spelling: protocol.md section 2's
    # (Host first) and the Connection: close of its one-request connections; no others.
    assert list(req.headers) == [
        "Host",
        "Connection",
        "User-Agent",
        "Cache-Control",
        "x-ESP32-STA-MAC",
        "x-ESP32-AP-MAC",
        "x-ESP32-free-space",
        "x-ESP32-sketch-size",
        "x-ESP32-sketch-md5",
        "x-ESP32-chip-size",
        "x-ESP32-sdk-version",
        "x-ESP32-mode",
        "x-ESP32-version",
    ]
    assert req.headers["Host"] == f"127.0.0.1:{port}"
    assert req.headers["Connection"] == "close"
    h = {k.lower(): v for k, v in req.headers.items()}
    assert h["user-agent"] == "ESP32-http-Update"
    assert h["cache-control"] == "no-cache"
    assert h["x-esp32-sta-mac"] == "24:0A:C4:00:00:01"
    assert h["x-esp32-ap-mac"] == "24:0A:C4:00:00:02"
    assert h["x-esp32-free-space"] == str(0x180000)
    assert h["x-esp32-sketch-size"] == str(len(image_v1))
    assert h["x-esp32-sketch-md5"] == hashlib.md5(image_v1).hexdigest()
    assert h["x-esp32-chip-size"] == str(4 * 1024 * 1024)
    assert h["x-esp32-sdk-version"] == "v5.4.1"
    assert h["x-esp32-mode"] == "sketch"
    assert h["x-esp32-version"] == "1.0.0"
    assert agent_board.flash.boot_partition().label == "ota_1"
    ota1 = agent_board.flash.part("ota_1")
    assert agent_board.flash.read(ota1.offset, len(image_v2)) == image_v2


def test_304_when_the_board_already_runs_the_image_is_no_update(agent_board, image_v1, tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "app.bin").write_bytes(image_v1)
    before = snapshot(agent_board)
    with UpdateServer(tmp_path / "cat") as srv:
        got = update_via(agent_board, srv.url)
        assert [r.status for r in srv.requests if r.path == "/app.bin"] == [304]
    assert got == ["NOAVAIL", ""]
    assert snapshot(agent_board) == before


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.mark.parametrize(
    "status, text",
    [
        (401, "Unauthorized (401) for /app.bin"),
        (403, "Forbidden (403) for /app.bin"),
        (404, "File Not Found (404) for /app.bin"),
        (500, "Wrong HTTP Code (500) for /app.bin"),
        (206, "Wrong HTTP Code (206) for /app.bin"),  # a partial reply to a request without Range
        (302, "Redirect (302) without a Location header"),  # redirects: test_transport_*
    ],
)
def test_http_error_codes_fail_with_the_arduino_texts(agent_board, status, text):
    before = snapshot(agent_board)
    got, _ = canned(agent_board, Canned(status, body=b"no", reason="X"))
    assert got == ["FAIL", text]
    assert snapshot(agent_board) == before


def test_refusals_before_anything_is_written(agent_board, image_v2):
    before = snapshot(agent_board)
    wrong_magic = b"\x00" + image_v2[1:]
    cases = {
        "no size": (
            Canned(200, [("x-MD5", _md5(image_v2))], image_v2, length=False),
            "Server Did Not Report Size",
        ),
        "magic": (
            Canned(200, [("x-MD5", _md5(wrong_magic))], wrong_magic),
            "Verify Bin Header Failed",
        ),
        "merged": (
            Canned(200, [("x-MD5", _md5(m := build_merged(image_v2)))], m),
            "merged bootloader",
        ),
        "chip": (
            Canned(200, [("x-MD5", _md5(c := build_app(version="2", chip="esp32s3")))], c),
            "Image is for ESP32-S3 (chip id 9), this board is ESP32 (chip id 0)",
        ),
        "too large": (
            Canned(
                raw=b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\nx-MD5: "
                + _md5(image_v2).encode()
                + b"\r\n\r\n"
                + image_v2[:8192]
            ),
            "Not Enough space",
        ),
        "bad x-MD5": (Canned(200, [("x-MD5", "xyz")], image_v2), "Bad x-MD5 header"),
        # no x-MD5 and no catalog entry read: the catalog is asked for its md5 (404 here)
        "no x-MD5": (
            Canned(200, [], image_v2),
            "No x-MD5 header for app.bin, and its catalog entry cannot be read: Update "
            "server responds (404) to the catalog query",
        ),
    }
    for what, (reply, text) in cases.items():
        got, _ = canned(agent_board, reply)
        assert got[0] == "FAIL" and text in got[1], (what, got)
        assert snapshot(agent_board) == before, what


def test_md5_mismatch_and_short_body_leave_nothing_bootable(agent_board, image_v2):
    flipped = bytearray(image_v2)
    flipped[200_000] ^= 0x01  # a bit flipped in transit
    for reply, text in [
        (Canned(200, [("x-MD5", _md5(image_v2))], bytes(flipped)), "MD5 Check Failed"),
        (Canned(200, [("x-MD5", _md5(image_v2))], image_v2, cut=100_000), "body cut short"),
    ]:
        got, _ = canned(agent_board, reply)
        assert got[0] == "FAIL" and text in got[1], got
        assert agent_board.flash.boot_partition().label == "ota_0"
        ota1 = agent_board.flash.part("ota_1")
        assert agent_board.flash.read(ota1.offset, 1) == b"\xff"  # no image header
        assert agent_board.flash.image_problem(ota1)


def test_flash_that_does_not_read_back_fails_the_update_and_nothing_new_boots(
    agent_board, image_v2, tmp_path
):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "app.bin").write_bytes(image_v2)
    ota1 = agent_board.flash.part("ota_1")
    at, mask = faulty_byte(image_v2, "stuck1")
    before = [e.describe() for e in agent_board.flash.otadata()]
    agent_board.arm_flash_fault("stuck1", ota1.offset + at, mask)
    with UpdateServer(tmp_path / "cat") as srv:
        got = update_via(agent_board, srv.url)
    back = _md5(agent_board.flash.read(ota1.offset, len(image_v2)))
    assert back != _md5(image_v2)
    assert got == [
        "FAIL",
        f"flash read-back MD5 {back} != image {_md5(image_v2)}: flash not written",
    ]
    assert_nothing_new_boots(agent_board, before)


def test_cannot_connect_names_host_and_port(agent_board):
    port = closed_port()
    got = update_via(agent_board, f"http://127.0.0.1:{port}/")
    assert got[0] == "FAIL" and f"Cannot connect to 127.0.0.1:{port}" in got[1]


def test_no_ota_partition_besides_the_running_one_fails_before_any_request(tmp_path, image_v1):
    table = tuple(p for p in layout.MICROPYTHON_OTA_4MB if p[0] != "ota_1")
    board = Board.create(tmp_path / "one", image_v1, table=table)
    install_agent(board)
    with CannedServer({}) as srv:
        got = update_via(board, f"http://127.0.0.1:{srv.port}/")
        assert srv.requests == []
    assert got == [
        "FAIL",
        "No available OTA partition: the table has no slot besides the running one",
    ]


def test_callbacks_and_statuses(agent_board, image_v2, tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "app.bin").write_bytes(image_v2)
    with UpdateServer(tmp_path / "cat") as srv:
        got, res = run_json(
            agent_board,
            f"""
import json
from acupdate import agent
from acupdate.config import Config
ev = []
up = agent.Updater(Config(url="{srv.url}", led=2))
up.on_start = lambda: ev.append(["start", agent.NAMES[up.status]])
up.on_progress = lambda a, s: ev.append(["progress", a, s]) if a == s or a == 4096 else None
up.on_end = lambda md5: ev.append(["end", md5])
up.update("app.bin")
up.on_error = lambda t: ev.append(["error", t])
up.update("missing.bin")
ev.append(agent.NAMES[up.status])
print(json.dumps(ev))
""",
        )
    n = len(image_v2)
    assert got == [
        ["start", "START"],
        ["progress", 4096, n],
        ["progress", n, n],
        ["end", _md5(image_v2)],
        ["start", "START"],
        ["error", "File Not Found (404) for /missing.bin"],
        "FAIL",
    ]
    # The LED blinked during the transfer and was left off.
    values = [v for pin, v in res.pins if pin == "2"]
    assert len(values) > 4 and values[-1] == 0
