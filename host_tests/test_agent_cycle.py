"""The whole cycle on the simulated board: catalog, update, reset, the new image boots
pending verification, boot.py confirms it after its health check (or rolls back)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import install_agent, mpremote, run_json

from tools.board.serial import SerialBoard
from tools.server.core import UpdateServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(tmp_path, image_v2):
    cat = tmp_path / "catalog"
    (cat / "old").mkdir(parents=True)
    (cat / "app.bin").write_bytes(image_v2)
    (cat / "notes.txt").write_text("release notes\n")
    with UpdateServer(cat) as srv:
        yield srv


@pytest.fixture
def deployed(board, server):
    install_agent(board)
    for name in ("boot.py", "main.py"):
        (board.fs / name).write_text((ROOT / name).read_text())
    settings = {
        "wifi": {"ssid": "acupdate-lab", "key": "otapass123"},
        "server": {"url": server.url, "reboot": False},
    }
    (board.fs / "acupdate.json").write_text(json.dumps(settings))
    return board


def test_catalog_update_reset_pending_confirm_and_keep(deployed):
    res = deployed.run(
        "import acupdate.repl as r\nr.ls()\nr.update()\nimport machine\nmachine.reset()\n"
    )
    assert res.reset == "hard", res.output
    assert "app.bin" in res.output and "notes.txt" not in res.output
    assert "Update successful" in res.output

    res = deployed.run("import acupdate.repl as r\nr.status()\n")
    assert "slot=ota_1 version=2.0.0" in res.boot.log_line()
    assert res.boot.state == "PENDING_VERIFY"
    assert "acupdate: Wi-Fi 'acupdate-lab' joined" in res.output
    assert "acupdate: new image confirmed after its health check" in res.output
    assert "ota_1  2.0.0          VALID" in res.output

    res = deployed.run("import sys\nprint(sorted(k for k in sys.modules if 'acupdate.' in k))")
    assert "[]" in res.output  # boot.py unloaded the agent: the application has the heap
    assert "slot=ota_1 version=2.0.0" in res.boot.log_line()
    assert res.boot.state == "VALID" and not res.boot.rollback


def test_failed_health_check_is_not_confirmed_and_rolls_back(deployed):
    settings = json.loads((deployed.fs / "acupdate.json").read_text())
    settings["health"] = {"imports": ["app"]}
    (deployed.fs / "acupdate.json").write_text(json.dumps(settings))
    res = deployed.run("import acupdate.repl as r\nr.update()\nimport machine\nmachine.reset()\n")
    assert res.reset == "hard"
    # The new firmware's application is broken: it fails to import.
    (deployed.fs / "app.py").write_text("raise RuntimeError('sensor missing')\n")
    res = deployed.run("print('not reached')")
    assert res.boot.state == "PENDING_VERIFY"
    assert "health check failed: import app failed" in res.output
    assert res.reset == "hard" and "not reached" not in res.output
    res = deployed.run("import acupdate.repl as r\nr.status()")
    assert res.boot.rollback and "slot=ota_0 version=1.0.0" in res.boot.log_line()
    # boot.py and status() say what happened, in words.
    note = "ollback: the image in ota_1 (version 2.0.0) never confirmed itself; ota_0 "
    note += "(version 1.0.0) runs again"
    assert f"acupdate: r{note}" in res.output and f"R{note}" in res.output
    assert "ota_1  2.0.0          ABORTED" in res.output


def test_wifi_down_fails_the_default_health_check(deployed):
    res = deployed.run("import acupdate.repl as r\nr.update()\nimport machine\nmachine.reset()\n")
    assert res.reset == "hard"
    settings = json.loads((deployed.fs / "acupdate.json").read_text())
    settings["wifi"] = {"ssid": "acupdate-lab", "key": "wrong", "wait_ms": 300}
    (deployed.fs / "acupdate.json").write_text(json.dumps(settings))
    res = deployed.run("print('app')")
    assert "Wi-Fi 'acupdate-lab' not joined (STAT_WRONG_PASSWORD, status 202)" in res.output
    assert "health check failed: network is not up" in res.output and res.reset == "hard"


def test_update_by_name_and_choices(deployed, server, image_v2):
    (Path(server.root) / "beta.bin").write_bytes(image_v2)
    got, res = run_json(
        deployed,
        "import acupdate.repl as r, json\nst = r.update()\nprint(json.dumps(st))\n",
    )
    assert got is None
    assert "The server lists 2 images; choose one: ota.update('app.bin')" in res.output
    got, res = run_json(
        deployed, "import acupdate.repl as r, json\nprint(json.dumps(r.update('beta.bin')))\n"
    )
    assert got == "SUCCESS" and "Update successful: beta.bin" in res.output


def test_repl_flow_through_mpremote(deployed, image_v2):
    settings = json.loads((deployed.fs / "acupdate.json").read_text())
    settings["server"]["reboot"] = True
    (deployed.fs / "acupdate.json").write_text(json.dumps(settings))
    log = bytearray()
    with SerialBoard(deployed, echo=log.extend) as sb:
        assert sb.wait_boots(1)
        out = mpremote(sb, "exec", "import acupdate.repl as r; r.ls()")
        assert "app.bin" in out and "1.43 MiB" not in out  # 300 KB image
        # The update ends in a hard reset (after the countdown), so mpremote does not
        # wait for the end of the command: the board's serial output tells the story.
        mpremote(sb, "exec", "--no-follow", "import acupdate.repl as r; r.update()")
        assert sb.wait_boots(2, timeout=90)
        text = log.decode(errors="replace")
        assert "100%" in text and "Update successful" in text and "Rebooting in 1 s" in text
        assert "%\r" in text or " \r " in text  # the progress line redraws in place
        # Its last state: percent, bytes of the 300,000, and the rate.
        n = len(image_v2)
        done = re.findall(rf"100%  {n} / {n} bytes  (\d+\.\d) KiB/s", text)
        assert done and float(done[-1]) > 0, text
        assert "slot=ota_1 version=2.0.0" in sb.boots[1] and "PENDING_VERIFY" in sb.boots[1]
        out = mpremote(sb, "exec", "import acupdate.repl as r; r.status()")
        assert "VALID" in out and "running next-boot" in out
    assert b"new image confirmed after its health check" in log


def test_repl_confirm_and_rollback_through_mpremote(agent_board, server):
    # v2 written to ota_1 by the agent; no boot.py here, so nothing confirms it but us.
    got, _ = run_json(
        agent_board,
        "import json\nfrom acupdate.agent import Updater, NAMES\n"
        "from acupdate.config import Config\n"
        f"up = Updater(Config(url='{server.url}'))\n"
        "print(json.dumps(NAMES[up.update('app.bin')]))",
    )
    assert got == "SUCCESS"
    row = "  {:<6} {:<14} {:<16} {}"
    with SerialBoard(agent_board) as sb:
        assert sb.wait_boots(1)
        assert "slot=ota_1 version=2.0.0" in sb.boots[0] and "PENDING_VERIFY" in sb.boots[0]
        out = mpremote(sb, "exec", "import acupdate.repl as r; r.confirm(); r.status()")
        assert out.splitlines() == [
            "Running image confirmed",
            row.format("slot", "version", "otadata", ""),
            row.format("ota_0", "1.0.0", "-", ""),
            row.format("ota_1", "2.0.0", "VALID", "running next-boot"),
        ]
        # Confirmed: a reset keeps it.
        mpremote(sb, "exec", "--no-follow", "import machine; machine.reset()")
        assert sb.wait_boots(2)
        assert (
            "slot=ota_1 version=2.0.0 project=acupdate-demo state=VALID rollback=no" in sb.boots[1]
        )
        out = mpremote(sb, "exec", "import acupdate.repl as r; print(r.rollback()); r.status()")
        assert out.splitlines()[:2] == ["Next boot: ota_0", "ota_0"]
        assert row.format("ota_0", "1.0.0", "NEW", "next-boot") in out.splitlines()
        assert row.format("ota_1", "2.0.0", "VALID", "running ") in out.splitlines()
        # rollback(reset=True) says so and resets once it has returned (as update()): a
        # command that runs it (mpremote exec, waiting for its end) ends; v1 boots from ota_0.
        out = mpremote(sb, "exec", "import acupdate.repl as r; r.rollback(reset=True)", timeout=30)
        assert out.splitlines()[:1] == ["Next boot: ota_0"]
        assert sb.wait_boots(3)
        assert "slot=ota_0 version=1.0.0" in sb.boots[2], sb.boots
        assert sb.output.count(b"Next boot: ota_0") == 2  # printed before the reset too
    assert agent_board.flash.boot_partition().label == "ota_0"


def test_ctrl_c_cancels_the_reboot_countdown(deployed):
    settings = json.loads((deployed.fs / "acupdate.json").read_text())
    settings["server"]["reboot"] = True
    (deployed.fs / "acupdate.json").write_text(json.dumps(settings))
    with SerialBoard(deployed) as sb:
        assert sb.wait_boots(1)
        mpremote(sb, "exec", "--no-follow", "import acupdate.repl as r; r.update()")
        assert sb.wait_output(b"Rebooting in 3 s", timeout=60)
        out = mpremote(sb, "resume", "exec", "print('still', 'here')")  # sends Ctrl-C first
        assert "still here" in out
        assert sb.wait_output(b"Reboot cancelled")
        assert len(sb.boots) == 1
        out = mpremote(sb, "exec", "import esp32; print(esp32.Partition(0).info()[4])")
        assert "ota_1" in out  # the update stands: it boots at the next reset
