"""device/acupdate/ota/verify.py and ota/image.py under the real MicroPython (48K heap, the
agent's promised heap for http): first-block refusals, the app descriptor, and the segment
walk that measures an image inside a partition. Test images are built here with struct (and
cross-checked once with `esptool image-info`)."""

from __future__ import annotations

import hashlib
import struct
import subprocess

import pytest

from host_tests.mpy_helpers import BIN, call_mpy, compile_device

CHIP_ESP32, CHIP_S3 = 0, 9
HEAP = "48K"  # the agent's promised heap for http (README)


def app_desc(version: str = "1.2.3", project: str = "demo", idf: str = "v5.2.2") -> bytes:
    d = struct.pack("<II8x", 0xABCD5432, 0)
    d += version.encode().ljust(32, b"\0") + project.encode().ljust(32, b"\0")
    d += b"10:00:01".ljust(16, b"\0") + b"Nov 26 2026".ljust(16, b"\0")
    d += idf.encode().ljust(32, b"\0") + bytes(range(32))  # app_elf_sha256
    return d.ljust(256, b"\0")


def build_image(
    segments: list[tuple[int, bytes]],
    chip: int = CHIP_ESP32,
    hashed: bool = True,
) -> bytes:
    """An ESP32 image: 24-byte header, segments, padding + checksum, optional SHA-256."""
    head = struct.pack(
        "<BBBBIBBBBHBHHIB",
        0xE9,
        len(segments),
        2,  # DIO
        0x20,  # 4 MB, 40 MHz
        0x40080400,  # entry
        0xEE,  # WP pin
        0,
        0,
        0,
        chip,
        0,  # min rev (old)
        0,  # min rev full
        399,  # max rev full
        0,  # reserved
        1 if hashed else 0,
    )
    assert len(head) == 24
    out = bytearray(head)
    checksum = 0xEF
    for addr, data in segments:
        out += struct.pack("<II", addr, len(data)) + data
        for b in data:
            checksum ^= b
    out += b"\0" * (15 - len(out) % 16) + bytes([checksum])
    assert len(out) % 16 == 0
    if hashed:
        out += hashlib.sha256(out).digest()
    return bytes(out)


def app_image(size_hint: int = 3000, chip: int = CHIP_ESP32, hashed: bool = True, **kw) -> bytes:
    drom = app_desc(**kw) + bytes((i * 7) & 0xFF for i in range(size_hint))
    iram = bytes((i * 13 + 5) & 0xFF for i in range(size_hint // 2 + 4))
    return build_image([(0x3F400020, drom), (0x40080000, iram)], chip, hashed)


def merged_image() -> bytes:
    """Starts like a bootloader (flashed at 0x1000 in a merged download): a 0xE9 image
    whose first segment holds code, not an app descriptor."""
    boot = build_image([(0x3FFF0030, bytes(range(256)) * 4), (0x40078000, b"\x13" * 512)])
    return boot + b"\xff" * (0x8000 - 0x1000 - len(boot)) + b"\xaa\x50" + b"\xff" * 30


@pytest.fixture(scope="module")
def mpy_path(tmp_path_factory):
    return compile_device(tmp_path_factory.mktemp("mpy"))


def check(mpy_path, block: bytes, chip=None, size=None, space=None):
    """verify.check() on `block`, read from a file by the device code."""
    return call_mpy(
        f"""
        from acupdate.ota import verify
        f = open({part_file(block)!r}, "rb")
        block = f.read()
        f.close()
        result = verify.check(block, {chip!r}, {size!r}, {space!r})
        """,
        heap=HEAP,
        path=mpy_path,
    )


def test_builder_agrees_with_esptool(tmp_path):
    """The hand-built test image is a valid ESP32 app image by esptool's reading."""
    img = tmp_path / "app.bin"
    img.write_bytes(app_image())
    p = subprocess.run(
        [str(BIN / "esptool"), "--chip", "esp32", "image-info", str(img)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout.lower()
    assert "checksum" in out and "(valid)" in out, p.stdout
    assert "validation hash" in out and "invalid" not in out, p.stdout
    assert "1.2.3" in p.stdout and "demo" in p.stdout


def test_good_header_accepted(mpy_path):
    block = app_image()[:4096]
    assert check(mpy_path, block, CHIP_ESP32, 100_000, 0x180000) == ["ok", CHIP_ESP32]
    assert check(mpy_path, app_image(chip=CHIP_S3)[:4096], CHIP_S3) == ["ok", CHIP_S3]


def test_wrong_magic_refused(mpy_path):
    block = b"\x00" + app_image()[1:4096]
    kind, typ, msg = check(mpy_path, block, CHIP_ESP32)
    assert (kind, typ) == ("err", "ValueError")
    assert "0x00" in msg and "0xE9" in msg
    kind, typ, msg = check(mpy_path, b"<html>not found</html>", CHIP_ESP32)
    assert typ == "ValueError" and "0x3C" in msg


def test_merged_image_refused(mpy_path):
    kind, typ, msg = check(mpy_path, merged_image()[:4096], CHIP_ESP32)
    assert (kind, typ) == ("err", "ValueError")
    assert "merged" in msg and "0xABCD5432" in msg and "offset 32" in msg


def test_other_chip_refused(mpy_path):
    kind, typ, msg = check(mpy_path, app_image(chip=CHIP_S3)[:4096], CHIP_ESP32)
    assert (kind, typ) == ("err", "ValueError")
    assert "ESP32-S3 (chip id 9)" in msg and "ESP32 (chip id 0)" in msg


def test_too_large_refused(mpy_path):
    kind, typ, msg = check(mpy_path, app_image()[:4096], CHIP_ESP32, 0x180001, 0x180000)
    assert (kind, typ) == ("err", "ValueError")
    assert str(0x180001) in msg and str(0x180000) in msg
    assert check(mpy_path, app_image()[:4096], CHIP_ESP32, 0x180000, 0x180000)[0] == "ok"


def test_short_image_refused(mpy_path):
    kind, typ, msg = check(mpy_path, app_image()[:20], CHIP_ESP32)
    assert typ == "ValueError" and "20 bytes" in msg


def desc(mpy_path, block: bytes):
    return call_mpy(
        f"""
        from acupdate.ota import image, verify
        f = open({part_file(block)!r}, "rb")
        b = f.read(4096)
        d = image.AppDesc(b)
        result = [[d.version, d.project, d.time, d.date, d.idf], verify.check(b),
                  verify.chip_name(9), verify.chip_name(99), image.chip_id(b)]
        try:
            image.chip_id(b"\\x00" * 24)
        except ValueError as e:
            result.append(str(e))
        try:
            image.AppDesc(b[:32] + b"\\x00" * 4 + b[36:])
        except ValueError as e:
            result.append(str(e))
        """,
        heap=HEAP,
        path=mpy_path,
    )


def test_app_desc_and_chip_helpers(mpy_path):
    block = app_image(version="2.0.1", project="thermo", idf="v5.4.1", chip=CHIP_S3)
    assert desc(mpy_path, block) == [
        "ok",
        [
            ["2.0.1", "thermo", "10:00:01", "Nov 26 2026", "v5.4.1"],
            9,
            "ESP32-S3 (chip id 9)",
            "unknown chip (chip id 99)",
            9,
            "not an ESP32 image header (24 bytes)",
            "no app descriptor at offset 32 (block of 4096 bytes)",
        ],
    ]
    blank = desc(mpy_path, app_image(version="", project=""))
    assert blank[0] == "ok" and blank[1][0][:2] == ["", ""] and blank[1][4] == 0


def walk(mpy_path, part: bytes, limit: int):
    """Run image_size() over `part` (written to a file, read by offset like a partition)."""
    return call_mpy(
        f"""
        from acupdate.ota import image
        f = open({part_file(part)!r}, "rb")
        def read(off, buf):
            f.seek(off)
            if f.readinto(buf) != len(buf):
                raise OSError("short read at %d" % off)
        result = image.image_size(read, {limit})
        """,
        heap=HEAP,
        path=mpy_path,
    )


_files: list = []


def part_file(data: bytes):
    import tempfile

    f = tempfile.NamedTemporaryFile(suffix=".part", delete=False)
    f.write(data)
    f.close()
    _files.append(f.name)
    return f.name


@pytest.fixture(autouse=True)
def _cleanup_files():
    yield
    import os

    while _files:
        os.unlink(_files.pop())


@pytest.mark.parametrize("hashed", [True, False])
@pytest.mark.parametrize("extra", [0, 1, 7, 15, 16, 100])
def test_segment_walk_finds_image_length(mpy_path, hashed, extra):
    """The walk returns the exact image length (padding, checksum, hash) whatever the
    segments' alignment, in a partition that is 0xFF after the image."""
    img = build_image(
        [(0x3F400020, app_desc() + b"\x5a" * extra), (0x40080000, b"\x11" * (40 + extra))],
        hashed=hashed,
    )
    part = img + b"\xff" * (0x10000 - len(img))
    assert walk(mpy_path, part, len(part)) == ["ok", len(img)]


def test_segment_walk_errors(mpy_path):
    img = app_image()
    kind, typ, msg = walk(mpy_path, img, len(img) - 1)
    assert typ == "ValueError" and str(len(img) - 1) in msg
    kind, typ, msg = walk(mpy_path, b"\xff" * 4096, 4096)
    assert typ == "ValueError" and "0xFF" in msg
    bad = bytearray(img)
    bad[24 + 4 : 24 + 8] = struct.pack("<I", 0x7FFFFFF0)  # first segment claims ~2 GiB
    kind, typ, msg = walk(mpy_path, bytes(bad) + b"\xff" * 4096, len(bad) + 4096)
    assert typ == "ValueError" and "segment 0" in msg and str(0x7FFFFFF0) in msg
    bad = bytearray(img)
    bad[1] = 0
    kind, typ, msg = walk(mpy_path, bytes(bad), len(bad))
    assert typ == "ValueError" and "0 segments" in msg
