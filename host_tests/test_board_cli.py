"""python -m tools.board: create, run, state, and clear errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from conftest import MPREMOTE


def board_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "tools.board", *args], capture_output=True, text=True, timeout=60
    )


def test_create_run_state(tmp_path):
    d = str(tmp_path / "b")
    res = board_cli("create", d, "--version", "4.5.6")
    assert res.returncode == 0 and "ota_0      version=4.5.6        valid" in res.stdout
    res = board_cli("run", d, "-c", "import esp32; print('on', esp32.Partition(1).info()[4])")
    assert res.returncode == 0
    assert "boot: slot=ota_0 version=4.5.6" in res.stdout and "on ota_0" in res.stdout
    res = board_cli("run", d, "-c", "import machine; machine.reset()")
    assert res.returncode == 0 and "[board: hard reset]" in res.stdout
    res = board_cli("state", d)
    assert res.returncode == 0
    assert "sector 0: erased" in res.stdout and "next boot: ota_0" in res.stdout


def test_create_from_an_image_file_and_refuse_a_bad_one(tmp_path):
    from tools.image import build_app

    img = tmp_path / "v.bin"
    img.write_bytes(build_app(version="7.0.0", size=20_000))
    res = board_cli("create", str(tmp_path / "b"), "--image", str(img))
    assert res.returncode == 0 and "version=7.0.0" in res.stdout
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00" * 1000)
    res = board_cli("create", str(tmp_path / "c"), "--image", str(bad))
    assert res.returncode == 2 and "not a valid app image" in res.stderr


def test_errors_are_one_line_and_exit_2(tmp_path):
    res = board_cli("state", str(tmp_path / "nothing"))
    assert res.returncode == 2
    assert "is not a board (no board.json): create it first" in res.stderr
    assert "Traceback" not in res.stderr
    res = board_cli("run", str(tmp_path / "nothing"), "-c", "print(1)")
    assert res.returncode == 2


def test_a_failing_script_exits_1_with_its_traceback(tmp_path):
    d = str(tmp_path / "b")
    board_cli("create", d)
    res = board_cli("run", d, "-c", "raise ValueError('boom')")
    assert res.returncode == 1 and "ValueError: boom" in res.stdout


def test_serve_gives_a_serial_port_that_mpremote_drives(board):
    """`serve DIR`: the board's REPL on a pty (also DIR/tty) for the real mpremote, until
    SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.board", "serve", str(board.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()  # the pty is open before this line is printed
        found = re.match(r"board serial port: (/dev/\S+) \(also (\S+)\)", first)
        assert found, first
        device, link = found.groups()
        assert Path(link) == board.path / "tty" and os.path.realpath(link) == device
        out = subprocess.run(
            [MPREMOTE, "connect", link, "exec", "import esp32; print(esp32.Partition(1).info())"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "(0, 16, 65536, 1572864, 'ota_0', False)" in out.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert not (board.path / "tty").exists()  # the link goes with the port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_misuse_is_one_line_and_exit_2_and_every_option_has_help(tmp_path):
    # Issue 15: `board run --heap 10` printed a traceback; options had bare --help entries.
    res = board_cli("run", str(tmp_path), "--heap", "10")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.splitlines()[-1] == (
        "python -m tools.board run: error: argument --heap: expected a size such as 48K or "
        "1M, at least 16K, got '10'"
    )
    for cmd in ("create", "run", "serve", "repl", "state"):
        out = board_cli(cmd, "--help").stdout
        opts = out.split("positional arguments:", 1)[1]
        entries = [ln for ln in opts.splitlines() if re.match(r"^  \S", ln)]
        bare = [ln for ln in entries if len(ln.split("  ", 2)) < 3 and not ln.endswith(":")]
        assert not bare, (cmd, bare, out)
    out = board_cli("create", "--help").stdout
    assert "acupdate-lab (key otapass123)" in " ".join(out.split())
