"""Issue 11's six findings, one test each: what a new user did that stranded a board (or
would have, on real hardware), run on the simulated board with the real agent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import MPREMOTE, install_agent, mpremote
from test_ota_model import HC

from tools.board import layout
from tools.board.serial import SerialBoard
from tools.image import build_app
from tools.server.core import UpdateServer

ROOT = Path(__file__).resolve().parent.parent
WIFI = {"ssid": "acupdate-lab", "key": "otapass123"}


@pytest.fixture
def catalog(tmp_path):
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "good.bin").write_bytes(build_app(version="good2", size=120_000, seed=2))
    (folder / "bad.bin").write_bytes(build_app(version="bad9", size=120_000, seed=9))
    with UpdateServer(folder) as srv:
        yield srv


def deploy(board, url, **extra):
    """The agent, boot.py, main.py, the health check (hc: an image whose version starts
    with 'bad' is broken) and /acupdate.json on the board."""
    for name in ("boot.py", "main.py"):
        (board.fs / name).write_text((ROOT / name).read_text())
    install_agent(board, mpy=True)
    (board.fs / "hc.py").write_text(HC)
    settings = {"wifi": WIFI, "server": {"url": url, "reboot": False}}
    settings["health"] = {"imports": ["hc"]}
    settings.update(extra)
    (board.fs / "acupdate.json").write_text(json.dumps(settings))


def settle(board, code="print('settled')"):
    """Hard resets until the board stays up (boot.py resets it after a failed health
    check); the boot lines, in order, and the last run."""
    boots = []
    for _ in range(6):
        res = board.run(code)
        boots.append(res.boot.log_line())
        if res.reset != "hard":
            return boots, res
    raise AssertionError(f"the board keeps resetting: {boots}")


def test_update_twice_before_a_reset_runs_a_failing_image_once(board, catalog):
    # ota_1 runs a confirmed image; the broken one goes to ota_0, twice before a reset. ESP-IDF
    # writes the same ota_seq into both otadata sectors for the second set_boot: the broken
    # image was tried twice, then (both entries ABORTED) booted from ota_0 for good.
    good = build_app(version="good1", size=120_000, seed=1)
    board.flash.erase(0x190000, 0x20000)
    board.flash.write(0x190000, good)
    board.flash.write_otadata(0, 2, layout.VALID)
    deploy(board, catalog.url)
    res = board.run("import acupdate.repl as r\nr.update('bad.bin')\nr.update('bad.bin')")
    # The second update finds the image in ota_0 complete: no download, set_boot() again.
    assert res.output.count("Update successful: bad.bin") == 1, res.output
    assert "bad.bin is in ota_0 already, complete" in res.output, res.output
    boots, res = settle(board, "import acupdate.repl as r\nr.status()")
    assert sum("version=bad9" in b for b in boots) == 1, boots
    assert "slot=ota_1 version=good1" in boots[-1]
    rows = [ln.split() for ln in res.output.splitlines()[-4:]]
    assert rows[1] == ["ota_0", "bad9", "ABORTED"], rows
    assert rows[2] == ["ota_1", "good1", "VALID", "running", "next-boot"], rows
    assert "image in ota_0 (version bad9) never confirmed itself" in res.output


def test_confirm_before_the_reset_does_not_make_the_new_image_valid(board, catalog):
    # mark_app_valid_cancel_rollback marks the active entry, which names the updated slot:
    # the never-booted image would be VALID, its rollback protection gone.
    deploy(board, catalog.url)
    res = board.run("import acupdate.repl as r\nr.update('good.bin')\nprint(r.confirm())")
    assert "Running image not confirmed: ota_1 boots next" in res.output, res.output
    assert res.output.rstrip().endswith("False")
    assert [(e.seq, e.state) for e in board.flash.otadata() if not e.erased] == [(2, layout.NEW)]
    res = board.run("print('up')")
    assert "slot=ota_1 version=good2" in res.boot.log_line()
    assert res.boot.state == "PENDING_VERIFY"  # checked by boot.py's health check, then kept
    assert "new image confirmed after its health check" in res.output


def test_confirm_on_a_freshly_flashed_board_says_so(board, catalog):
    # otadata erased: ESP-IDF's mark_app_valid_cancel_rollback fails with ESP_FAIL.
    deploy(board, catalog.url)
    res = board.run("import acupdate.repl as r\nprint(r.confirm())")
    assert "Traceback" not in res.output, res.output
    assert "Running image needs no confirmation: otadata is blank" in res.output
    assert res.output.rstrip().endswith("True")
    assert all(e.erased for e in board.flash.otadata())


INTERRUPTED = """
import acupdate.repl as r
from acupdate.agent import Updater
from acupdate.config import Config
r.update('good.bin')
up = Updater(Config(url={url!r}))
def stop(amount, size):
    if amount > 40000:
        raise KeyboardInterrupt
up.on_progress = stop
try:
    up.update('bad.bin')
except KeyboardInterrupt:
    print('interrupted')
r.status()
"""


def test_status_after_a_download_stopped_by_ctrl_c_says_incomplete(board, catalog):
    # An update, then a second one stopped by Ctrl-C: its slot holds part of an image, its
    # header held back. status() showed it 'NEW next-boot', before and after the reset.
    deploy(board, catalog.url)
    res = board.run(INTERRUPTED.format(url=catalog.url))
    assert "interrupted" in res.output
    rows = res.output.splitlines()[-3:]
    assert rows[1].split() == ["ota_0", "1.0.0", "VALID", "running", "next-boot"], rows
    assert rows[2].split() == ["ota_1", "incomplete", "-"], rows
    res = board.run("import acupdate.repl as r\nr.status()")
    assert "slot=ota_0 version=1.0.0" in res.boot.log_line()
    rows = res.output.splitlines()[-3:]
    assert rows[1].split() == ["ota_0", "1.0.0", "VALID", "running", "next-boot"], rows
    assert rows[2].split() == ["ota_1", "incomplete", "-"], rows


def test_a_wrong_wifi_key_does_not_lock_mpremote_out(board, catalog):
    # boot.py waited for the Wi-Fi on every soft reset (each mpremote command makes one):
    # mpremote gave up, "could not enter raw repl"; and 202 was a number, not a reason.
    deploy(board, catalog.url, wifi={"ssid": "acupdate-lab", "key": "wrong key", "wait_ms": 15000})
    with SerialBoard(board) as sb:
        assert sb.wait_boots(1)
        assert sb.wait_output(b">>> ")  # the hard boot: boot.py gives up on a wrong key
        out = mpremote(sb, "exec", "print('in', 6 * 7)", timeout=60)
        assert "in 42" in out
        assert b"not joined (STAT_WRONG_PASSWORD, status 202)" in sb.output
        assert b"not waited for after a soft reset" in sb.output


def test_update_through_mpremote_exec_returns(board, catalog):
    # The update resets the board at its end: mpremote waited for the end of its command
    # for ever. Now the reset comes just after update() has returned.
    deploy(board, catalog.url, server={"url": catalog.url, "reboot": True})
    with SerialBoard(board) as sb:
        assert sb.wait_boots(1)
        res = subprocess.run(
            [MPREMOTE, "connect", sb.device, "exec", "import acupdate.repl as ota; ota.update()"],
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        assert "The server lists 2 images; choose one" in res.stdout  # two in the catalog
        res = subprocess.run(
            [
                MPREMOTE,
                "connect",
                sb.device,
                "exec",
                "import acupdate.repl as ota; ota.update('good.bin')",
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        assert "Update successful: good.bin" in res.stdout and "Rebooting in 1 s" in res.stdout
        assert sb.wait_boots(2, timeout=60)
        assert "slot=ota_1 version=good2" in sb.boots[1]
