"""ESP32 app image layout: constants, chip facts and helpers shared by the builder and reader.

Layout facts come from ESP-IDF's image format (see /work/shared/reference/esp32.md,
"App image format"); the per-chip memory maps follow the chips' technical reference
manuals and the ranges esptool 5.x classifies, so `esptool image-info` names each segment.
"""

import struct
from dataclasses import dataclass

from tools.cli import CLIError


class ImageError(CLIError):
    """The one error type of tools.image: bad arguments or an image that cannot be walked
    (on the command line: one line, exit status 2)."""


IMAGE_MAGIC = 0xE9
APP_DESC_MAGIC = 0xABCD5432
BOOTLOADER_DESC_MAGIC = 0x50
CHECKSUM_SEED = 0xEF
HEADER_LEN = 24
SEG_HEADER_LEN = 8
HASH_LEN = 32
APP_DESC_LEN = 256
MAX_SEGMENTS = 16
MMU_PAGE = 0x10000
APP_FLASH_OFFSET = 0x10000
PARTITION_TABLE_OFFSET = 0x8000

# magic, segment count, flash mode, flash size|freq, entry, WP pin, 3 drive bytes,
# chip id, min rev (legacy), min rev full, max rev full, 4 reserved, hash appended
HEADER = struct.Struct("<BBBBIBBBBHBHH4sB")
SEG_HEADER = struct.Struct("<II")
# esp_app_desc_t: magic, secure_version, reserv1[2], version, project_name, time, date,
# idf_ver, app_elf_sha256, min/max efuse block rev, mmu_page_size (log2), reserv3[3],
# reserv2[18]
APP_DESC = struct.Struct("<II8s32s32s16s16s32s32sHHB3s72s")
# esp_bootloader_desc_t: magic byte, reserved[3], version, idf_ver, date_time, reserved[16]
BOOTLOADER_DESC = struct.Struct("<B3sI32s24s16s")

assert HEADER.size == HEADER_LEN and APP_DESC.size == APP_DESC_LEN
assert BOOTLOADER_DESC.size == 80

CHIPS: dict[str, int] = {
    "esp32": 0,
    "esp32s2": 2,
    "esp32c3": 5,
    "esp32s3": 9,
    "esp32c2": 12,
    "esp32c6": 13,
    "esp32h2": 16,
    "esp32p4": 18,
    "esp32c61": 20,
    "esp32c5": 23,
}
CHIP_NAMES: dict[int, str] = {v: k for k, v in CHIPS.items()}


@dataclass(frozen=True)
class Chip:
    """Where an app and a bootloader for one chip load their segments."""

    name: str
    id: int
    boot_offset: int  # flash offset of the second-stage bootloader
    drom: int  # flash-mapped data window base
    irom: int  # flash-mapped code window base
    shared_mmu: bool  # DROM pages follow the IROM pages in one MMU table
    dram: int
    iram: int
    boot_dram: int
    boot_iram0: int
    boot_iram1: int
    min_rev_full: int
    max_rev_full: int


_CHIP_TABLE = [
    # name, boot offset, DROM, IROM, shared MMU, DRAM, IRAM, boot DRAM, boot IRAM x2, revs
    ("esp32", 0x1000, 0x3F400000, 0x400D0000, False, 0x3FFB0000, 0x40080000,
     0x3FFF0030, 0x40078000, 0x40080400, 0, 399),
    ("esp32s2", 0x1000, 0x3F000000, 0x40080000, False, 0x3FFBC000, 0x40024000,
     0x3FFE6100, 0x4004B000, 0x4004F000, 0, 199),
    ("esp32c3", 0x0, 0x3C000000, 0x42000000, True, 0x3FC98000, 0x40380000,
     0x3FCD5820, 0x403CC710, 0x403CE710, 3, 199),
    ("esp32s3", 0x0, 0x3C000000, 0x42000000, True, 0x3FC98000, 0x40374000,
     0x3FCE3818, 0x403C9700, 0x403CC700, 0, 99),
    ("esp32c2", 0x0, 0x3C000000, 0x42000000, True, 0x3FCA8000, 0x40380000,
     0x3FCD5800, 0x403AE000, 0x403B2000, 100, 199),
    ("esp32c6", 0x0, 0x42000000, 0x42000000, True, 0x40810000, 0x40800000,
     0x4086C410, 0x4086E610, 0x40875720, 0, 99),
    ("esp32h2", 0x0, 0x42000000, 0x42000000, True, 0x40810000, 0x40800000,
     0x4083CE00, 0x4083F000, 0x40843000, 0, 99),
    ("esp32p4", 0x2000, 0x40000000, 0x40000000, True, 0x4FF20000, 0x4FF10000,
     0x4FF80000, 0x4FF88000, 0x4FF8C000, 0, 199),
    ("esp32c61", 0x0, 0x42000000, 0x42000000, True, 0x40810000, 0x40800000,
     0x40840000, 0x40842000, 0x40846000, 0, 99),
    ("esp32c5", 0x2000, 0x42000000, 0x42000000, True, 0x40810000, 0x40800000,
     0x40840000, 0x40842000, 0x40846000, 100, 199),
]  # fmt: skip

CHIP_INFO: dict[str, Chip] = {
    row[0]: Chip(row[0], CHIPS[row[0]], *row[1:])  # type: ignore[arg-type]
    for row in _CHIP_TABLE
}


def resolve_chip(chip: str | int) -> Chip:
    """A Chip from a name in CHIPS ("esp32c3", "ESP32-C3") or a chip id (5)."""
    if isinstance(chip, bool):
        raise ImageError(f"chip must be a name or an id, got {chip!r}")
    if isinstance(chip, int):
        name = CHIP_NAMES.get(chip)
        if name is None:
            known = ", ".join(f"{n}={i}" for n, i in CHIPS.items())
            raise ImageError(f"unknown chip id {chip}; known ids: {known}")
        return CHIP_INFO[name]
    if isinstance(chip, str):
        key = chip.strip().lower().replace("-", "").replace("_", "")
        if key.isdigit():
            return resolve_chip(int(key))
        if key in CHIP_INFO:
            return CHIP_INFO[key]
        raise ImageError(f"unknown chip {chip!r}; known chips: {', '.join(CHIPS)}")
    raise ImageError(f"chip must be a name or an id, got {type(chip).__name__} {chip!r}")


def xor_bytes(data: bytes | bytearray | memoryview, start: int = 0) -> int:
    """`start` XOR every byte of `data` (the ESP ROM checksum), in C-speed big-int steps."""
    width = len(data)
    if width == 0:
        return start & 0xFF
    x = int.from_bytes(data, "little")
    while width > 1:
        half = (width + 1) // 2
        bits = 8 * half
        x = (x >> bits) ^ (x & ((1 << bits) - 1))
        width = half
    return (x ^ start) & 0xFF


def checksum_offset(end_of_segments: int) -> int:
    """File offset of the checksum byte: the last byte of the 16-byte block after the segments."""
    return end_of_segments + 15 - (end_of_segments % 16)


def cstr(raw: bytes) -> str:
    """A NUL-padded C string field as text (undecodable bytes shown as U+FFFD)."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
