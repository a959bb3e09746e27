"""The simulated bootloader: otadata selection, rollback, refusing invalid images."""

from __future__ import annotations

import json

from conftest import WRITE_FILE, run_json

from tools.board import Board, BoardError, layout
from tools.image import build_app

UPDATE = (
    WRITE_FILE
    + """
import esp32, machine
p = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
write_file(p, "new.bin")
p.set_boot()
machine.reset()
print("not reached")
"""
)

WHO = """
import esp32, json
print(json.dumps(esp32.Partition(esp32.Partition.RUNNING).info()[4]))
"""

CONFIRM = """
import esp32, json
esp32.Partition.mark_app_valid_cancel_rollback()
print(json.dumps(esp32.Partition(esp32.Partition.RUNNING).info()[4]))
"""


def states(board: Board) -> list[tuple[int, str]]:
    return [(e.seq, layout.STATE_NAMES[e.state]) for e in board.flash.otadata() if not e.erased]


def test_update_pending_then_rollback_then_confirm(board, image_v2):
    (board.fs / "new.bin").write_bytes(image_v2)
    res = board.run(UPDATE)
    assert res.reset == "hard" and "not reached" not in res.output
    assert states(board) == [(2, "NEW")]

    # First boot of the new image: pending verification.
    got, res = run_json(board, WHO)
    assert got == "ota_1"
    assert "slot=ota_1 version=2.0.0" in res.boot.log_line()
    assert "state=PENDING_VERIFY rollback=no" in res.boot.log_line()
    assert states(board) == [(2, "PENDING_VERIFY")]

    # It never confirmed itself: the next reset rolls back.
    got, res = run_json(board, WHO)
    assert got == "ota_0"
    assert res.boot.rollback and "rollback=yes" in res.boot.log_line()
    assert "version=1.0.0" in res.boot.log_line()
    assert states(board) == [(2, "ABORTED")]

    # Again, and this time the new image confirms itself: it stays across resets.
    res = board.run(UPDATE)
    assert res.reset == "hard"
    got, res = run_json(board, CONFIRM)
    assert got == "ota_1" and res.boot.state == "PENDING_VERIFY"
    for _ in range(2):
        got, res = run_json(board, WHO)
        assert got == "ota_1" and res.boot.state == "VALID" and not res.boot.rollback
    # After the rollback no entry was selectable, so set_boot wrote sector 0 afresh.
    assert states(board) == [(2, "VALID")]


def test_second_update_goes_back_to_ota_0(board, image_v2):
    (board.fs / "new.bin").write_bytes(image_v2)
    board.run(UPDATE)
    run_json(board, CONFIRM)
    (board.fs / "new.bin").write_bytes(build_app(version="3.0.0", size=150_000, seed=3))
    res = board.run(UPDATE)
    assert res.reset == "hard"
    got, res = run_json(board, CONFIRM)
    assert got == "ota_0" and "version=3.0.0" in res.boot.log_line()
    assert sorted(states(board)) == [(2, "VALID"), (3, "VALID")]


def test_invalid_image_in_boot_slot_boots_the_other_valid_slot(board):
    # otadata selects ota_1, but ota_1 holds garbage: the bootloader refuses it.
    board.flash.erase(0x190000, 0x1000)
    board.flash.write(0x190000, b"\xe9\x03" + bytes(100))
    board.flash.write_otadata(0, 2, layout.VALID)
    assert board.flash.boot_partition().label == "ota_1"
    got, res = run_json(board, WHO)
    assert got == "ota_0"
    assert "refused=ota_1(" in res.boot.log_line()


def test_no_valid_image_at_all_is_a_dead_board(board):
    board.flash.erase(0x10000, 0x1000)
    try:
        board.run("print(1)")
    except BoardError as e:
        assert "no bootable app" in str(e)
    else:
        raise AssertionError("a board without a valid image booted")


def test_otadata_layout_is_byte_exact(board, image_v2):
    (board.fs / "new.bin").write_bytes(image_v2)
    board.run(UPDATE)
    raw = board.flash.read(0xD000, 32)
    import binascii
    import struct

    seq, state, crc = struct.unpack_from("<I", raw)[0], *struct.unpack_from("<II", raw, 24)
    assert seq == 2 and state == layout.NEW
    assert raw[4:24] == b"\xff" * 20
    assert crc == binascii.crc32(struct.pack("<I", 2), 0xFFFFFFFF)
    assert board.flash.read(0xE000, 0x1000) == b"\xff" * 0x1000  # other sector erased


def test_partition_table_binary_is_micropython_ota_layout(board):
    import hashlib

    table = board.flash.read(0x8000, 0xC00)
    entries = table[: 6 * 32]
    assert table[6 * 32 : 6 * 32 + 2] == b"\xeb\xeb"
    assert table[6 * 32 + 2 : 6 * 32 + 16] == b"\xff" * 14
    assert table[6 * 32 + 16 : 7 * 32] == hashlib.md5(entries).digest()
    assert table[7 * 32 :] == b"\xff" * (0xC00 - 7 * 32)
    labels = [p.label for p in board.flash.parts]
    assert labels == ["nvs", "otadata", "phy_init", "ota_0", "ota_1", "vfs"]


def test_board_modules_macs_wifi_pins_and_reset_cause(board):
    got, res = run_json(
        board,
        """
import json, machine, network, esp
sta = network.WLAN(network.STA_IF)
ap = network.WLAN(network.AP_IF)
out = {"sta": sta.config("mac").hex(), "ap": ap.config("mac").hex(),
       "uid": machine.unique_id().hex(), "flash": esp.flash_size(),
       "cause": machine.reset_cause()}
try:
    sta.connect("acupdate-lab", "otapass123")
except OSError as e:
    out["inactive"] = str(e)
sta.active(True)
sta.connect("acupdate-lab", "wrong")
out["wrongpw"] = [sta.isconnected(), sta.status()]
sta.connect("acupdate-lab", "otapass123")
out["ok"] = [sta.isconnected(), sta.status(), sta.ifconfig()[0]]
led = machine.Pin(2, machine.Pin.OUT)
for v in (1, 0, 1, 0):
    led.value(v)
print(json.dumps(out))
""",
    )
    assert got["sta"] == "240ac4000001" and got["ap"] == "240ac4000002"
    assert got["uid"] == "240ac4000001"
    assert got["flash"] == 4 * 1024 * 1024
    assert got["cause"] == 1  # PWRON_RESET on a new board
    assert "Wifi Not Started" in got["inactive"]
    assert got["wrongpw"] == [False, 202]
    assert got["ok"] == [True, 1010, "127.0.0.1"]
    assert res.pins == [("2", 1), ("2", 0), ("2", 1), ("2", 0)]


def test_watchdog_not_fed_resets_the_board(board):
    res = board.run("import machine, time\nw = machine.WDT(timeout=300)\ntime.sleep(5)\n")
    assert res.reset == "wdt"
    got, _ = run_json(board, "import machine, json\nprint(json.dumps(machine.reset_cause()))")
    assert got == 3  # WDT_RESET


def test_hard_reset_cause_and_soft_reset_exit(board):
    assert board.run("import machine\nmachine.reset()").reset == "hard"
    got, _ = run_json(board, "import machine, json\nprint(json.dumps(machine.reset_cause()))")
    assert got == 2  # HARD_RESET


def test_board_filesystem_is_root_and_boot_py_runs_first(board):
    (board.fs / "boot.py").write_text("BOOTED = 42\n")
    (board.fs / "main.py").write_text("MAINED = 7\n")
    got, _ = run_json(board, "import os, json\nprint(json.dumps([os.listdir('/'), BOOTED]))")
    assert got == [["boot.py", "main.py"], 42]
    got, _ = run_json(board, "import json\nprint(json.dumps(MAINED))", main=True)
    assert got == 7


def test_application_heap_matches_plain_micropython(board):
    from tools.board.board import plain_free

    got, _ = run_json(
        board, "import gc, json\ngc.collect()\nprint(json.dumps(gc.mem_free()))", heap="40K"
    )
    # The simulator's own modules are ROM on a real board: the app sees the free heap of a
    # bare `micropython -X heapsize=40K`, less what this small script itself holds.
    assert plain_free(40 * 1024) - 2048 <= got <= plain_free(40 * 1024)
    # ... and in one piece, as a fresh interpreter has it.
    got, _ = run_json(
        board,
        "import gc, json\ngc.collect()\nb = bytearray(gc.mem_free() - 2048)\n"
        "print(json.dumps(len(b)))",
        heap="40K",
    )
    assert got >= plain_free(40 * 1024) - 4096


def test_state_table_reports_slots_otadata_and_next_boot(board, image_v2):
    (board.fs / "new.bin").write_bytes(image_v2)
    board.run(UPDATE)
    text = board.state_table()
    assert "ota_1      version=2.0.0" in text
    assert "sector 0: seq=2 state=NEW" in text
    assert "next boot: ota_1" in text
    st = board.state()
    assert json.loads(json.dumps(st))["next_boot"] == "ota_1"


def test_background_run_and_power_cut_mid_write(board, image_v2):
    (board.fs / "new.bin").write_bytes(image_v2)
    running = board.start(
        WRITE_FILE
        + """
import esp32
p = esp32.Partition("ota_1")
print("writing")
while True:
    write_file(p, "new.bin")
"""
    )
    assert running.wait_output("writing")
    res = running.power_off()
    assert res.reset is None and res.returncode == -9
    # Power back on: the half-written slot was never made bootable; v1 runs.
    got, res = run_json(board, "import machine, json\nprint(json.dumps(machine.reset_cause()))")
    assert got == 1 and "slot=ota_0 version=1.0.0" in res.boot.log_line()
