"""acupdate.ota.writer and acupdate.ota.slots on the simulated board (real MicroPython)."""

from __future__ import annotations

import hashlib

import pytest
from conftest import run_json

from tools.image import build_app

FEED = """
import esp32, json
from acupdate.ota import slots
from acupdate.ota import writer as ota
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
from acupdate.ota import image, slots
f = image.facts(slots.running(), bytearray(4096))
d = f.desc
print(json.dumps([f.chip, f.size, f.md5, d.version, d.project, slots.running_state(),
                  slots.otadata()]))
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
        "import json\nfrom acupdate.ota import slots\nst = slots.running_state()\n"
        "slots.confirm()\nprint(json.dumps([st, slots.running_state()]))",
    )
    assert got == ["PENDING_VERIFY", "VALID"] and "version=2.0.0" in res.boot.log_line()
    got, _ = run_json(
        agent_board,
        "import json\nfrom acupdate.ota import slots\nprint(json.dumps(slots.rollback()))",
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
    assert got["error"] == (
        "OSError: ESP-IDF refused to boot the new image: ESP_ERR_OTA_VALIDATE_FAILED (-5379): "
        "the image in the slot is not a valid app image for this chip (magic, segments, "
        "checksum or SHA-256)"
    )
    assert got["boot"] == "ota_0"


def faulty_byte(image: bytes, kind: str) -> tuple[int, int]:
    """An offset past block 0 and a bit there that the fault `kind` gets wrong."""
    for i in range(4096 + 100, len(image)):
        b = image[i]
        if kind == "stuck1" and b != 0xFF:
            return i, (~b & 0xFF) & -(~b & 0xFF)  # a 0 bit that will stay 1
        if kind == "stuck0" and b:
            return i, b & -b  # a 1 bit that will read 0
        if kind == "drop" and any(x != 0xFF for x in image[i & ~255 : (i | 255) + 1]):
            return i, 0x01  # a page that will stay erased
    raise AssertionError("no byte for the fault")


def assert_fault_left(stored: bytes, image: bytes, kind: str, at: int, mask: int):
    """The flash differs from the image only where the fault acts."""
    diff = [i for i in range(len(image)) if stored[i] != image[i]]
    if kind == "drop":
        page = range(at & ~255, (at | 255) + 1)
        assert diff and set(diff) <= set(page) and {stored[i] for i in page} == {0xFF}
    else:
        assert diff == [at] and stored[at] ^ image[at] == mask


def assert_nothing_new_boots(board, before: list):
    """The boot slot is still ota_0 (otadata as before), ota_1 holds no valid image, and
    after a reset v1 boots from ota_0."""
    assert board.flash.boot_partition().label == "ota_0"
    assert [e.describe() for e in board.flash.otadata()] == before
    assert board.flash.image_problem(board.flash.part("ota_1"))
    res = board.run("print('up')")
    assert "slot=ota_0 version=1.0.0" in res.boot.log_line() and "up" in res.output


@pytest.mark.parametrize("kind", ["stuck1", "stuck0", "drop"])
def test_written_data_that_does_not_read_back_is_not_booted(agent_board, image_v2, kind):
    (agent_board.fs / "img.bin").write_bytes(image_v2)
    md5 = hashlib.md5(image_v2).hexdigest()
    ota1 = agent_board.flash.part("ota_1")
    at, mask = faulty_byte(image_v2, kind)
    before = [e.describe() for e in agent_board.flash.otadata()]
    agent_board.arm_flash_fault(kind, ota1.offset + at, mask)
    got, _ = run_json(agent_board, FEED.format(size=len(image_v2), chunk=4096, md5=md5))
    stored = agent_board.flash.read(ota1.offset, len(image_v2))
    assert_fault_left(stored, image_v2, kind, at, mask)
    back = hashlib.md5(stored).hexdigest()
    assert got["error"] == (
        f"OSError: flash read-back MD5 {back} != image {md5}: flash not written"
    )
    assert got["boot"] == "ota_0"
    assert_nothing_new_boots(agent_board, before)
