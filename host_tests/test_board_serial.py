"""The board's serial REPL driven by the real mpremote (PyPI), over a pseudo-terminal."""

from __future__ import annotations

import pytest
from conftest import mpremote

from tools.board.serial import SerialBoard, cook


@pytest.fixture
def serial(board):
    log = bytearray()
    (board.fs / "boot.py").write_text("print('boot.py ran')\nBOOT_MARK = 1\n")
    with SerialBoard(board, echo=log.extend) as sb:
        assert sb.wait_boots(1)
        sb.log = log
        yield sb


def test_mpremote_copies_a_file_runs_code_that_reads_it_and_lists(serial, tmp_path, board):
    src = tmp_path / "data.txt"
    src.write_text("hello from the host\n" * 300)
    out = mpremote(
        serial,
        "cp",
        str(src),
        ":data.txt",
        "+",
        "exec",
        "print(len(open('data.txt').read()), open('data.txt').readline().strip())",
    )
    assert "6000 hello from the host" in out
    assert (board.fs / "data.txt").read_text() == src.read_text()
    assert "data.txt" in mpremote(serial, "ls")
    back = tmp_path / "back.txt"
    mpremote(serial, "cp", ":data.txt", str(back))
    assert back.read_text() == src.read_text()


def test_mpremote_run_and_soft_reset_restart_micropython_on_the_same_image(serial, tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import esp32\nX = 5\nprint('slot', esp32.Partition(1).info()[4])\n")
    assert "slot ota_0" in mpremote(serial, "run", str(script))
    # Without a soft reset, state survives between commands (resume) ...
    out = mpremote(serial, "resume", "exec", "Y = 9", "+", "exec", "print('Y' in globals())")
    assert "True" in out
    # ... a soft reset clears it and runs boot.py again, without the bootloader.
    before = serial.log.count(b"boot.py ran")
    out = mpremote(serial, "soft-reset", "+", "exec", "print('Y' in globals(), BOOT_MARK)")
    assert "False 1" in out
    assert serial.log.count(b"boot.py ran") > before
    assert len(serial.boots) == 1  # no hard reset happened


def test_mpremote_reset_goes_through_the_bootloader(serial):
    mpremote(serial, "reset")
    assert serial.wait_boots(2)
    assert serial.boots[1].startswith("boot: slot=ota_0")


def test_ctrl_c_interrupts_running_code(serial):
    mpremote(serial, "exec", "--no-follow", "while True:\n    pass\n")
    out = mpremote(serial, "resume", "exec", "print('alive', 6 * 7)")
    assert "alive 42" in out
    assert b"KeyboardInterrupt" in serial.log


def test_ota_through_the_repl_then_hard_reset_boots_the_new_image(
    serial, board, image_v2, tmp_path
):
    img = tmp_path / "new.bin"
    img.write_bytes(image_v2)
    writer = tmp_path / "w.py"
    writer.write_text(
        "import esp32\n"
        "p = esp32.Partition(esp32.Partition.RUNNING).get_next_update()\n"
        "buf = bytearray(4096)\nblk = 0\n"
        "with open('new.bin', 'rb') as f:\n"
        "    while True:\n"
        "        n = f.readinto(buf)\n"
        "        if not n:\n            break\n"
        "        buf[n:] = b'\\xff' * (4096 - n)\n"
        "        p.writeblocks(blk, buf)\n        blk += 1\n"
        "p.set_boot()\nprint('set_boot done')\n"
    )
    assert "set_boot done" in mpremote(serial, "cp", str(img), ":new.bin", "+", "run", str(writer))
    mpremote(serial, "reset")
    assert serial.wait_boots(2)
    assert "slot=ota_1 version=2.0.0" in serial.boots[1]
    assert "state=PENDING_VERIFY" in serial.boots[1]


def test_output_is_cooked_like_the_board_uart():
    out, last = cook(b"a\nb\r\nc\n", b"")
    assert out == b"a\r\nb\r\nc\r\n" and last == b"\n"
    out, _ = cook(b"\nx", b"\r")
    assert out == b"\nx"  # the CR came in the previous chunk
