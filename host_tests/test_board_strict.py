"""The simulated board is as strict as ESP-IDF and a board where it matters to an OTA agent:
mark_app_valid_cancel_rollback as esp_ota_ops.c has it, MicroPython's first boot, Ctrl-C
during a soft reset, sockets only with a network, and a command line that does not let two
processes drive one board or leave a MicroPython behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import WRITE_FILE, mpremote, run_json
from test_board_cli import board_cli

from tools.board import layout
from tools.board.serial import SerialBoard


def entries(board) -> list[tuple[int, int, str]]:
    return [
        (e.sector, e.seq, layout.STATE_NAMES[e.state])
        for e in board.flash.otadata()
        if not e.erased
    ]


CONFIRM = """
import esp32, json
try:
    esp32.Partition.mark_app_valid_cancel_rollback()
    print(json.dumps("ok"))
except OSError as e:
    print(json.dumps(list(e.args)))
"""


def test_mark_valid_on_a_freshly_flashed_board_is_esp_fail(board):
    # otadata erased: no valid entry, so ESP-IDF says "running firmware is factory".
    got, _ = run_json(board, CONFIRM)
    assert got == [1, "ESP_FAIL"]
    assert entries(board) == []


def test_mark_valid_marks_the_active_entry_even_when_it_names_another_slot(board, image_v2):
    # set_boot(ota_1) then mark_app_valid_cancel_rollback() before the reset: ESP-IDF marks
    # the active entry (ota_1's, NEW) VALID, though ota_0 runs. ota_1 then boots VALID,
    # never PENDING_VERIFY: no rollback protects it.
    (board.fs / "new.bin").write_bytes(image_v2)
    got, _ = run_json(
        board,
        WRITE_FILE
        + """
import esp32, json
p = esp32.Partition("ota_1")
write_file(p, "new.bin")
p.set_boot()
esp32.Partition.mark_app_valid_cancel_rollback()
print(json.dumps(esp32.Partition(esp32.Partition.RUNNING).info()[4]))
""",
    )
    assert got == "ota_0"
    assert entries(board) == [(0, 2, "VALID")]
    res = board.run("print('up')")
    assert "slot=ota_1 version=2.0.0" in res.boot.log_line()
    assert res.boot.state == "VALID" and not res.boot.rollback


def test_partition_takes_a_bytes_label_as_micropython_does(board):
    got, _ = run_json(
        board,
        """
import esp32, json
out = [esp32.Partition(b"vfs").info()[4], esp32.Partition.find(label=b"ota_1")[0].info()[4]]
try:
    esp32.Partition(3.5)
except TypeError:
    out.append("TypeError")
print(json.dumps(out))
""",
    )
    assert got == ["vfs", "ota_1", "TypeError"]


def test_a_fresh_board_gets_micropython_s_default_boot_py_once(tmp_path, image_v1):
    from tools.board import Board

    board = Board.create(tmp_path / "b", image_v1)
    res = board.run("import os\nprint(os.listdir('/'))")
    assert "Performing initial setup" in res.output and "['boot.py']" in res.output
    text = (board.fs / "boot.py").read_text()
    assert text.startswith("# This file is executed on every boot")
    (board.fs / "boot.py").unlink()
    res = board.run("import os\nprint(os.listdir('/'))")  # formatted now: left as it is
    assert "Performing initial setup" not in res.output and "[]" in res.output


def test_ctrl_c_right_after_a_soft_reset_is_no_crash(board):
    # A tool that sends "\r\x03" as soon as it reads "soft reboot" (as mpremote does when it
    # connects) must find the board soft-reset, not crashed and hard-reset.
    banner = b'Type "help()"'
    with SerialBoard(board) as sb:
        assert sb.wait_boots(1)
        assert sb.wait_output(banner)
        for _ in range(12):
            n = sb.output.count(banner)
            os.write(sb.slave, b"\x04")
            assert sb.wait_until(lambda out, n=n: out.count(b"soft reboot\r\n") == n)
            os.write(sb.slave, b"\r\x03")
            # The next life's banner, or the crash line and the bootloader's.
            assert sb.wait_until(lambda out, n=n: out.count(banner) > n or b"crashed" in out)
            assert b"crashed" not in sb.output, sb.output.decode(errors="replace")[-600:]
        assert "alive 42" in mpremote(sb, "exec", "print('alive', 6 * 7)")
        assert b"crashed" not in sb.output
        assert len(sb.boots) == 1


NET = """
import json, network, socket
out = []
def attempt():
    try:
        socket.getaddrinfo("localhost", {port})
        out.append("dns ok")
    except OSError as e:
        out.append(e.args[0])
    ai = socket.getaddrinfo("127.0.0.1", {port}, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    try:
        s.connect(ai[-1])
        s.write(b"hi")
        out.append("connected")
    except OSError as e:
        out.append(e.args[0])
    s.close()
attempt()
sta = network.WLAN(network.STA_IF)
sta.active(True)
sta.connect("acupdate-lab", "wrong key")
attempt()
sta.connect("acupdate-lab", "otapass123")
attempt()
sta.active(False)
network.WLAN(network.AP_IF).active(True)
attempt()
print(json.dumps(out))
"""


def test_sockets_work_only_while_the_board_has_a_network(board):
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    try:
        got, _ = run_json(board, NET.format(port=srv.getsockname()[1]))
    finally:
        srv.close()
    no_net = [-202, 113]  # lwIP: DNS failure; EHOSTUNREACH
    assert got == no_net + no_net + ["dns ok", "connected"] + ["dns ok", "connected"]


def test_create_refuses_to_overwrite_a_board_without_force(tmp_path):
    d = str(tmp_path / "b")
    assert board_cli("create", d, "--version", "1.0.0").returncode == 0
    (tmp_path / "b" / "fs" / "keep.txt").write_text("user data")
    res = board_cli("create", d, "--version", "2.0.0")
    assert res.returncode == 2 and "is a board already" in res.stderr and "--force" in res.stderr
    assert (tmp_path / "b" / "fs" / "keep.txt").exists()
    assert "version=1.0.0" in board_cli("state", d).stdout
    res = board_cli("create", d, "--version", "2.0.0", "--force")
    assert res.returncode == 0 and "version=2.0.0" in res.stdout
    assert not (tmp_path / "b" / "fs" / "keep.txt").exists()


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _descendants(pid: int) -> list[int]:
    out = _children(pid)
    for k in list(out):
        out += _descendants(k)
    return out


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_sigterm_to_board_run_ends_its_micropython(board):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.board",
            "run",
            str(board.path),
            "-c",
            "print('looping')\nwhile True:\n    pass\n",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        kids: list[int] = []
        deadline = time.monotonic() + 60
        while not kids and time.monotonic() < deadline:  # polls /proc: no timing assumed
            kids = [k for k in _descendants(proc.pid) if "_board.py" in _cmdline(k)]
        assert kids, "board run started no MicroPython"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        assert "stopped (SIGTERM)" in proc.stderr.read()
        assert all(_gone(k) for k in kids), [_cmdline(k) for k in kids]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def test_run_refuses_while_serve_runs_the_board_and_state_names_the_running_slot(board):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.board", "serve", str(board.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert re.match(r"board serial port: ", proc.stdout.readline())
        res = board_cli("run", str(board.path), "-c", "print(1)")
        assert res.returncode == 2
        assert f"in use by tools.board serve, pid {proc.pid}: stop it first" in res.stderr
        res = board_cli("create", str(board.path), "--force")
        assert res.returncode == 2 and "in use by tools.board serve" in res.stderr
        res = board_cli("state", str(board.path))
        assert res.returncode == 0 and "running: ota_0" in res.stdout, res.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    res = board_cli("state", str(board.path))
    assert "running: (not booted)" in res.stdout
    assert board_cli("run", str(board.path), "-c", "print(1)").returncode == 0
    assert json.loads((board.path / "board.json").read_text()).get("running") is None
