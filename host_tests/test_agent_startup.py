"""main.py's optional start-up update check: updates when the server offers another
image, does nothing when it offers the running one (304), and never holds the
application up for long when the server is down."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import install_agent
from mpy_helpers import Canned, CannedServer

from tools.server.core import UpdateServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def deployed(board):
    install_agent(board)
    for name in ("boot.py", "main.py"):
        (board.fs / name).write_text((ROOT / name).read_text())
    (board.fs / "app.py").write_text("print('application running')\n")
    return board


def configure(board, url, reboot=False, timeout=2):
    settings = {
        "wifi": {"ssid": "acupdate-lab", "key": "otapass123"},
        "server": {"url": url, "reboot": reboot},
        "startup": {"update": True, "image": "app.bin", "timeout": timeout},
    }
    (board.fs / "acupdate.json").write_text(json.dumps(settings))


def test_startup_check_installs_a_different_image(deployed, image_v2, tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "app.bin").write_bytes(image_v2)
    with UpdateServer(tmp_path / "cat") as srv:
        configure(deployed, srv.url)
        res = deployed.run("print('after main')", main=True)
    assert "Update successful: app.bin" in res.output
    assert "application running" in res.output
    assert deployed.flash.boot_partition().label == "ota_1"


def test_startup_check_with_the_running_image_is_no_update(deployed, image_v1, tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "app.bin").write_bytes(image_v1)
    with UpdateServer(tmp_path / "cat") as srv:
        configure(deployed, srv.url)
        res = deployed.run("print('after main')", main=True)
        assert [r.status for r in srv.requests if r.path == "/app.bin"] == [304]
    assert "No update: the board already runs app.bin" in res.output
    assert "application running" in res.output
    assert deployed.flash.boot_partition().label == "ota_0"


def test_a_silent_server_delays_the_application_by_the_timeout_only(deployed):
    with CannedServer({"/app.bin": Canned(hang=True)}) as srv:
        configure(deployed, f"http://127.0.0.1:{srv.port}/", timeout=1)
        t0 = time.monotonic()
        res = deployed.run("print('after main')", main=True)
        took = time.monotonic() - t0
    assert "Update of app.bin failed: reading the reply failed (ETIMEDOUT)" in res.output
    assert "application running" in res.output
    # The server would hold the request for 30 s; the 1 s timeout lets the app go on.
    assert took < 10, f"the application waited {took:.1f} s"
    assert deployed.flash.boot_partition().label == "ota_0"
