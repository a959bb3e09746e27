"""Issue 15: ota.update() of an image the target slot already holds complete (update() run
twice before a reset) does not download it again: the slot's MD5, read back, equals the
server's x-MD5; it says so, and only sets the slot to boot."""

from __future__ import annotations

import pytest
from faults import HTTP_HEAP

from tools.image import build_app
from tools.server.core import UpdateServer


@pytest.fixture
def server(tmp_path):
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "app.bin").write_bytes(build_app(version="2.0.0", size=300_000, seed=2))
    (folder / "other.bin").write_bytes(build_app(version="3.0.0", size=200_000, seed=3))
    with UpdateServer(folder) as srv:
        yield srv


def test_update_twice_switches_the_boot_slot_without_a_download(agent_board, server):
    url = server.url + "/"
    code = (
        "import acupdate.repl as ota\n"
        f"print(repr(ota.update('app.bin', url={url!r}, reboot=False, quiet=True)))\n"
        f"print(repr(ota.update('app.bin', url={url!r}, reboot=False, quiet=True)))\n"
    )
    res = agent_board.run(code, heap=HTTP_HEAP)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.returncode == 0 and "Traceback" not in res.output, res.output + res.stderr
    assert lines == [
        "Update successful: app.bin is written and boots at the next reset",
        "'SUCCESS'",
        "app.bin is in ota_1 already, complete (its MD5 read back from the slot): not "
        "downloaded again; ota_1 boots at the next reset",
        "'SUCCESS'",
    ]
    assert agent_board.flash.boot_partition().label == "ota_1"
    res = agent_board.run("print('up')")
    assert (res.boot.slot.label, res.boot.version) == ("ota_1", "2.0.0")


def test_another_image_is_downloaded_over_the_held_one(agent_board, server):
    url = server.url + "/"
    code = (
        "import acupdate.repl as ota\n"
        f"print(repr(ota.update('app.bin', url={url!r}, reboot=False, quiet=True)))\n"
        f"print(repr(ota.update('other.bin', url={url!r}, reboot=False, quiet=True)))\n"
    )
    res = agent_board.run(code, heap=HTTP_HEAP)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines[2:] == [
        "Update successful: other.bin is written and boots at the next reset",
        "'SUCCESS'",
    ], res.output + res.stderr
    res = agent_board.run("print('up')")
    assert (res.boot.slot.label, res.boot.version) == ("ota_1", "3.0.0")
