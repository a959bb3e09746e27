"""acupdate.ota and acupdate.slots on the simulated board (real MicroPython)."""

from __future__ import annotations

import hashlib

import pytest
from conftest import run_json

from tools.image import build_app

FEED = """
import esp32, json
from acupdate import ota, slots
buf = bytearray(4096)
part = slots.target()
w = ota.Writer(part, {size}, buf)
chunk = bytearray({chunk})
with open("img.bin", "rb") as f:
    while True:
        n = f.readinto(chunk)
        if not n:
            break
        w.write(memoryview(chunk)[:n])
out = {{}}
try:
    out["md5"] = w.finish("{md5}")
except (OSError, ValueError) as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
b = bytearray(16)
part.readblocks(0, b)
out["head"] = list(b[:2])
out["boot"] = esp32.Partition(esp32.Partition.BOOT).info()[4]
print(json.dumps(out))
"""


@pytest.mark.parametrize("chunk", [1000, 4096, 5000])
def test_writer_streams_any_chunk_size_and_sets_boot(agent_board, image_v2, chunk):
    (agent_board.fs / "img.bin").write_bytes(image_v2)
    md5 = hashlib.md5(image_v2).hexdigest()
    got, _ = run_json(agent_board, FEED.format(size=len(image_v2), chunk=chunk, md5=md5))
    assert got == {"md5": md5, "head": [0xE9, image_v2[1]], "boot": "ota_1"}
    part = agent_board.flash.part("ota_1")
    assert agent_board.flash.read(part.offset, len(image_v2)) == image_v2


def test_md5_mismatch_leaves_nothing_bootable(agent_board, image_v2):
    bad = bytearray(image_v2)
    bad[len(bad) // 2] ^= 0x10  # flipped in transit
    (agent_board.fs / "img.bin").write_bytes(bytes(bad))
    md5 = hashlib.md5(image_v2).hexdigest()
    got, _ = run_json(agent_board, FEED.format(size=len(bad), chunk=4096, md5=md5))
    assert got["error"].startswith("ValueError: MD5 Check Failed")
    assert got["head"] == [0xFF, 0xFF]  # the header was never written: not an image
    assert got["boot"] == "ota_0"
    assert agent_board.flash.image_problem(agent_board.flash.part("ota_1"))


def test_short_body_is_an_error_and_not_bootable(agent_board, image_v2):
    (agent_board.fs / "img.bin").write_bytes(image_v2[:-5000])
    md5 = hashlib.md5(image_v2).hexdigest()
    got, _ = run_json(agent_board, FEED.format(size=len(image_v2), chunk=4096, md5=md5))
    assert "connection closed after" in got["error"]
    assert got["head"] == [0xFF, 0xFF] and got["boot"] == "ota_0"


def test_image_facts_of_the_running_image(agent_board, image_v1):
    got, _ = run_json(
        agent_board,
        """
import json
from acupdate import slots
cid, size, md5, desc = slots.image_facts(slots.running(), bytearray(4096))
print(json.dumps([cid, size, md5, desc[0], desc[1], slots.running_state(), slots.otadata()]))
""",
    )
    assert got[:5] == [
        0,
        len(image_v1),
        hashlib.md5(image_v1).hexdigest(),
        "1.0.0",
        "acupdate-demo",
    ]
    assert got[5] == "-"
    assert got[6] == [[0, None, "erased", False], [1, None, "erased", False]]


def test_rollback_and_confirm(agent_board, image_v2):
    (agent_board.fs / "img.bin").write_bytes(image_v2)
    md5 = hashlib.md5(image_v2).hexdigest()
    run_json(agent_board, FEED.format(size=len(image_v2), chunk=4096, md5=md5))
    got, res = run_json(
        agent_board,
        "import json\nfrom acupdate import slots\nst = slots.running_state()\n"
        "slots.confirm()\nprint(json.dumps([st, slots.running_state()]))",
    )
    assert got == ["PENDING_VERIFY", "VALID"] and "version=2.0.0" in res.boot.log_line()
    got, _ = run_json(
        agent_board, "import json\nfrom acupdate import slots\nprint(json.dumps(slots.rollback()))"
    )
    assert got == "ota_0"
    res = agent_board.run("print('hi')")
    assert "slot=ota_0 version=1.0.0" in res.boot.log_line()


def test_other_chip_image_written_is_refused_by_set_boot(agent_board):
    img = build_app(version="9.9.9", size=50_000, chip="esp32c3")
    (agent_board.fs / "img.bin").write_bytes(img)
    got, _ = run_json(
        agent_board, FEED.format(size=len(img), chunk=4096, md5=hashlib.md5(img).hexdigest())
    )
    assert "refused by ESP-IDF validation" in got["error"] and got["boot"] == "ota_0"
