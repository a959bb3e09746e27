"""esp32.Partition on the simulated board, run by the real MicroPython unix port.

Every expectation here is a fact of ../shared/reference/esp32.md or of ESP-IDF's
esp_partition_* checks; a lenient model would let agent code pass that bricks a board.
"""

from __future__ import annotations

import random

import pytest
from conftest import WRITE_FILE, run_json

from tools.board import BoardError
from tools.image import build_app


def test_constructor_forms_find_and_info(board):
    got, _ = run_json(
        board,
        """
import esp32, json
P = esp32.Partition
out = {}
out["running"] = P(P.RUNNING).info()
out["boot"] = P(P.BOOT).info()
out["ota_1"] = P("ota_1").info()
out["nvs"] = P("nvs").info()
out["apps"] = [p.info()[4] for p in P.find()]
out["data"] = [p.info()[4] for p in P.find(P.TYPE_DATA)]
out["fat"] = [p.info()[4] for p in P.find(type=P.TYPE_DATA, subtype=0x81)]
out["bylabel"] = [p.info()[4] for p in P.find(P.TYPE_DATA, label="otadata")]
out["consts"] = [P.BOOT, P.RUNNING, P.TYPE_APP, P.TYPE_DATA]
try:
    P("nope")
except OSError as e:
    out["missing"] = e.errno
try:
    P(7)
except ValueError:
    out["badint"] = "ValueError"
out["next"] = P(P.RUNNING).get_next_update().info()[4]
out["next2"] = P("ota_1").get_next_update().info()[4]
out["repr"] = repr(P("ota_0"))
out["same"] = P("ota_0") == P("ota_0")
print(json.dumps(out))
""",
    )
    assert got["running"] == [0, 0x10, 0x10000, 0x180000, "ota_0", False]
    assert got["boot"][4] == "ota_0"
    assert got["ota_1"] == [0, 0x11, 0x190000, 0x180000, "ota_1", False]
    assert got["nvs"] == [1, 2, 0x9000, 0x4000, "nvs", False]
    assert got["apps"] == ["ota_0", "ota_1"]
    assert got["data"] == ["nvs", "otadata", "phy_init", "vfs"]
    assert got["fat"] == ["vfs"]
    assert got["bylabel"] == ["otadata"]
    assert got["consts"] == [0, 1, 0, 1]
    assert got["missing"] == 2  # ENOENT
    assert got["badint"] == "ValueError"
    assert got["next"] == "ota_1" and got["next2"] == "ota_0"
    assert got["repr"].startswith("<Partition type=0, subtype=16, address=65536, size=1572864")
    assert got["same"] is False  # two objects; compare info() instead, as on the board


def test_nor_semantics_erase_and_write_forms(board):
    got, _ = run_json(
        board,
        """
import esp32, json
p = esp32.Partition("ota_1")
b = bytearray(4096)
out = {}
p.writeblocks(1, bytes([0x0F]) * 4096)            # 3 args: erase, then write
p.readblocks(1, b); out["erase_write"] = [b[0], b[4095]]
p.writeblocks(1, bytes([0xF3]) * 16, 100)         # 4 args: no erase -> old AND new
p.readblocks(1, b); out["and"] = [b[99], b[100], b[115], b[116]]
p.writeblocks(1, bytes([0xAA]) * 4096)            # 3 args again: erased first
p.readblocks(1, b); out["rewrite"] = [b[100], b[4000]]
out["ioctl"] = [p.ioctl(4, None), p.ioctl(5, None), p.ioctl(1, None), p.ioctl(99, None)]
out["erase6"] = p.ioctl(6, 1)
p.readblocks(1, b); out["after6"] = [min(b), max(b)]
r = bytearray(8); p.readblocks(1, r, 4090 - 2); out["read4"] = list(r)
p.writeblocks(2, bytes(8), 10)                    # 4 args on erased flash: exact
p.readblocks(2, r, 8); out["w4"] = list(r)
print(json.dumps(out))
""",
    )
    assert got["erase_write"] == [0x0F, 0x0F]
    assert got["and"] == [0x0F, 0x03, 0x03, 0x0F]
    assert got["rewrite"] == [0xAA, 0xAA]
    assert got["ioctl"] == [384, 4096, 0, None]
    assert got["erase6"] == 0 and got["after6"] == [0xFF, 0xFF]
    assert got["read4"] == [0xFF] * 8
    assert got["w4"] == [0xFF, 0xFF, 0, 0, 0, 0, 0, 0]


def test_small_block_size_erases_covering_sector_and_keeps_the_rest(board):
    got, _ = run_json(
        board,
        """
import esp32, json
p = esp32.Partition("ota_1", block_size=512)
q = esp32.Partition("ota_1")
q.writeblocks(0, bytes([0x11]) * 4096)
p.writeblocks(2, bytes([0x22]) * 512)     # sector 0 erased, bytes outside kept
b = bytearray(4096); q.readblocks(0, b)
print(json.dumps([b[0], b[1023], b[1024], b[1535], b[1536], b[4095],
                  p.ioctl(4, None), p.ioctl(5, None), p.ioctl(6, 0)]))
""",
    )
    assert got == [0x11, 0x11, 0x22, 0x22, 0x11, 0x11, 3072, 512, -22]


def test_bounds_and_erase_alignment_raise_like_esp_idf(board):
    got, _ = run_json(
        board,
        """
import esp32, json
p = esp32.Partition("ota_1")
def err(f):
    try:
        f()
    except OSError as e:
        return e.errno
    return "no error"
b = bytearray(4096)
print(json.dumps({
  "read_past_end": err(lambda: p.readblocks(384, b)),
  "read_straddle": err(lambda: p.readblocks(383, b, 1)),
  "read_start_past": err(lambda: p.readblocks(385, b)),
  "write_past_end": err(lambda: p.writeblocks(384, b)),
  "write4_straddle": err(lambda: p.writeblocks(383, b, 4)),
  "write3_partial": err(lambda: p.writeblocks(0, bytes(100))),
  "erase_past_end": err(lambda: p.ioctl(6, 384)),
  "last_block_ok": err(lambda: p.writeblocks(383, b)),
}))
""",
    )
    assert got == {
        "read_past_end": -0x104,  # ESP_ERR_INVALID_SIZE: runs past the partition
        "read_straddle": -0x104,
        "read_start_past": -0x102,  # ESP_ERR_INVALID_ARG: starts past the partition
        "write_past_end": -0x104,
        "write4_straddle": -0x104,
        "write3_partial": -0x104,  # erase_range needs whole sectors
        "erase_past_end": -0x104,
        "last_block_ok": "no error",
    }


def _corruptions(image: bytes, rng: random.Random) -> dict[str, bytes]:
    """Each a copy of a valid hashed image with one defect."""
    out = {}
    for i, pos in enumerate([0, 1, 12, 24, 40] + rng.sample(range(len(image)), 6)):
        bad = bytearray(image)
        bad[pos] ^= 1 << (i % 8)
        out[f"flip@{pos}"] = bytes(bad)
    out["truncated"] = image[: len(image) // 2]
    out["checksum"] = _with(image, len(image) - 33, image[len(image) - 33] ^ 0xFF)
    out["hash"] = _with(image, len(image) - 1, image[-1] ^ 0x80)
    return out


def _with(image: bytes, pos: int, value: int) -> bytes:
    bad = bytearray(image)
    bad[pos] = value
    return bytes(bad)


def test_set_boot_refuses_every_corrupted_image_and_changes_nothing(board, tmp_path):
    good = build_app(version="3.0.0", size=40_000, seed=9)
    nohash = build_app(version="3.0.1", size=40_000, seed=9, hash_appended=False)
    cases = _corruptions(good, random.Random(1234))
    flip = bytearray(nohash)
    flip[1000] ^= 0x04  # segment data: only the checksum can catch it
    cases["nohash-flip"] = bytes(flip)
    cases["other-chip"] = build_app(version="3.0.2", size=40_000, chip="esp32s3")
    names = sorted(cases)
    for i, name in enumerate(names):
        (board.fs / f"bad{i}.bin").write_bytes(cases[name])
    (board.fs / "good.bin").write_bytes(good)
    otadata_before = board.flash.read(0xD000, 0x2000)
    got, _ = run_json(
        board,
        WRITE_FILE
        + f"""
import esp32, json
p = esp32.Partition("ota_1")
res = []
for i in range({len(names)}):
    write_file(p, "bad%d.bin" % i)
    try:
        p.set_boot()
        res.append("accepted")
    except OSError as e:
        res.append(e.errno)
res.append(esp32.Partition(esp32.Partition.BOOT).info()[4])
print(json.dumps(res))
""",
    )
    refused = dict(zip(names, got, strict=False))
    assert refused == {name: -5379 for name in names}, refused
    assert got[-1] == "ota_0"
    assert board.flash.read(0xD000, 0x2000) == otadata_before

    got, _ = run_json(
        board,
        WRITE_FILE
        + """
import esp32, json
p = esp32.Partition("ota_1")
write_file(p, "good.bin")
p.set_boot()
print(json.dumps(esp32.Partition(esp32.Partition.BOOT).info()[4]))
""",
    )
    assert got == "ota_1"
    entries = board.flash.otadata()
    assert [(e.seq, e.state) for e in entries if not e.erased] == [(2, 0)]  # NEW, seq 2


@pytest.mark.parametrize("label", ["nvs", "vfs", "otadata"])
def test_set_boot_on_a_data_partition_fails_image_validation_first(board, label):
    # esp_ota_set_boot_partition validates the image before it looks at the partition's
    # type: a data partition, which holds no app image, is ESP_ERR_OTA_VALIDATE_FAILED.
    before = board.flash.read(0xD000, 0x2000)
    got, _ = run_json(
        board,
        f"""
import esp32, json
try:
    esp32.Partition("{label}").set_boot()
    print(json.dumps("accepted"))
except OSError as e:
    print(json.dumps(list(e.args)))
""",
    )
    assert got == [-0x1503, "ESP_ERR_OTA_VALIDATE_FAILED"]
    assert board.flash.read(0xD000, 0x2000) == before


def test_set_boot_on_a_data_partition_holding_an_app_image_is_invalid_arg(board, image_v2):
    # Past the image check, the type check: a data partition is not bootable even when it
    # holds a valid app image.
    (board.fs / "new.bin").write_bytes(image_v2)
    got, _ = run_json(
        board,
        WRITE_FILE
        + """
import esp32, json
p = esp32.Partition(b"vfs")
write_file(p, "new.bin")
try:
    p.set_boot()
    print(json.dumps("accepted"))
except OSError as e:
    print(json.dumps(list(e.args)))
""",
    )
    assert got == [-0x102, "ESP_ERR_INVALID_ARG"]
    assert board.flash.boot_partition().label == "ota_0"


# A faulty byte in ota_1's block 1; the device code lists each step's bytes that differ
# from the step's expected fill, as [offset in the block, value].
FAULT_AT = 0x190000 + 4096 + 0x234
FAULT_STEPS = """
import esp32, json
p = esp32.Partition("ota_1")
b = bytearray(4096)
def odd(fill):
    p.readblocks(1, b)
    return [[i, b[i]] for i in range(4096) if b[i] != fill]
out = {"power_on": odd(0xFF)}
p.writeblocks(1, bytes(4096))               # erase, program zeros
out["program"] = odd(0)
p.writeblocks(1, bytes([0xFF]) * 4096, 0)   # program 0xFF without erase: changes nothing
out["program_ff"] = odd(0)
p.ioctl(6, 1)                               # erase
out["erase"] = odd(0xFF)
print(json.dumps(out))
"""


@pytest.mark.parametrize(
    "kind, mask, want",
    [
        # a cell that will not program: its bit stays 1 after erase + program 0
        ("stuck1", 0x01, {"power_on": [], "program": [[0x234, 0x01]], "erase": []}),
        # a cell that will not erase: 0 from power-on, and after every erase
        ("stuck0", 0x80, {"power_on": [[0x234, 0x7F]], "program": [], "erase": [[0x234, 0x7F]]}),
        # a lost page program: the 256 bytes of that page stay erased
        (
            "drop",
            0x01,
            {"power_on": [], "program": [[i, 0xFF] for i in range(0x200, 0x300)], "erase": []},
        ),
    ],
)
def test_armed_flash_fault_acts_for_one_run_and_only_clears_bits(board, kind, mask, want):
    board.arm_flash_fault(kind, FAULT_AT, mask)
    got, _ = run_json(board, FAULT_STEPS)
    want["program_ff"] = want["program"]  # a program never sets a bit
    assert got == want
    assert board.flash_fault is None  # disarmed: the next run's flash is sound
    got, _ = run_json(board, FAULT_STEPS)
    # The flash holds what the faulty run left (its last erase); now it works again.
    assert got == {"power_on": want["erase"], "program": [], "program_ff": [], "erase": []}


def test_flash_fault_arguments_are_checked(board):
    with pytest.raises(BoardError, match="expected one of"):
        board.arm_flash_fault("flip", FAULT_AT)
    with pytest.raises(BoardError, match="the flash is 0x400000"):
        board.arm_flash_fault("drop", 0x400000)
    with pytest.raises(BoardError, match="bits of one byte"):
        board.arm_flash_fault("stuck1", FAULT_AT, 0x100)
