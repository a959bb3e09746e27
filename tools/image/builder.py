"""Build synthetic but valid ESP32 app images and merged (bootloader + table + app) downloads."""

import hashlib
import struct

from .format import (
    APP_DESC,
    APP_DESC_LEN,
    APP_DESC_MAGIC,
    APP_FLASH_OFFSET,
    BOOTLOADER_DESC,
    BOOTLOADER_DESC_MAGIC,
    CHECKSUM_SEED,
    HASH_LEN,
    HEADER,
    HEADER_LEN,
    IMAGE_MAGIC,
    MMU_PAGE,
    PARTITION_TABLE_OFFSET,
    SEG_HEADER,
    SEG_HEADER_LEN,
    Chip,
    ImageError,
    checksum_offset,
    resolve_chip,
    xor_bytes,
)

MIN_SIZE = 1024
MAX_SIZE = 4 * 1024 * 1024
RAM_SEGMENT_MAX = 0x8000
# An app big enough for a page-aligned IROM segment gets one (4 segments), else 3.
IROM_THRESHOLD = 0x18000
FLASH_MODE_DIO = 2
FLASH_4MB_DEFAULT_FREQ = 0x20  # 4 MB; frequency code 0 is a valid default on every chip
WP_PIN_DISABLED = 0xEE
MMU_PAGE_LOG2 = 16
PARTITION_TABLE_LEN = 0xC00

# MicroPython's 4 MiB OTA layout: (label, type, subtype, offset, size)
PARTITIONS = [
    ("nvs", 1, 0x02, 0x9000, 0x4000),
    ("otadata", 1, 0x00, 0xD000, 0x2000),
    ("phy_init", 1, 0x01, 0xF000, 0x1000),
    ("ota_0", 0, 0x10, 0x10000, 0x180000),
    ("ota_1", 0, 0x11, 0x190000, 0x180000),
    ("vfs", 1, 0x81, 0x310000, 0xF0000),
]


def _field(name: str, value: str, size: int) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) >= size:
        raise ImageError(
            f"{name} {value!r} is {len(raw)} bytes; at most {size - 1} fit (field is {size} "
            "bytes with a NUL)"
        )
    return raw


def _align4(n: int) -> int:
    return n & ~3


def _stream(label: str, n: int) -> bytes:
    """n deterministic pseudo-random bytes named by label."""
    return hashlib.shake_256(b"acupdate-image/" + label.encode()).digest(max(n, 0))


def _legacy_min_rev(full: int) -> int:
    # The old one-byte field counted majors (ESP32 v3.0 -> 3); ESP32-C3 counted minors (v0.3 -> 3).
    return full // 100 or full % 100


def _assemble(chip: Chip, entry: int, segments: list[tuple[int, bytes]], hashed: bool) -> bytes:
    header = HEADER.pack(
        IMAGE_MAGIC,
        len(segments),
        FLASH_MODE_DIO,
        FLASH_4MB_DEFAULT_FREQ,
        entry,
        WP_PIN_DISABLED,
        0,
        0,
        0,
        chip.id,
        _legacy_min_rev(chip.min_rev_full),
        chip.min_rev_full,
        chip.max_rev_full,
        b"\0\0\0\0",
        1 if hashed else 0,
    )
    parts = [header]
    pos = HEADER_LEN
    checksum = CHECKSUM_SEED
    for addr, data in segments:
        if len(data) % 4:
            raise AssertionError(f"segment at {addr:#x} length {len(data)} not 4-aligned")
        parts.append(SEG_HEADER.pack(addr, len(data)))
        parts.append(data)
        checksum = xor_bytes(data, checksum)
        pos += SEG_HEADER_LEN + len(data)
    cpos = checksum_offset(pos)
    parts.append(bytes(cpos - pos))
    parts.append(bytes([checksum]))
    image = b"".join(parts)
    if hashed:
        image += hashlib.sha256(image).digest()
    return image


def _app_desc(
    *, version: str, project: str, time: str, date: str, idf_ver: str, elf_sha256: bytes
) -> bytes:
    return APP_DESC.pack(
        APP_DESC_MAGIC,
        0,
        bytes(8),
        _field("version", version, 32),
        _field("project", project, 32),
        _field("time", time, 16),
        _field("date", date, 16),
        _field("idf_ver", idf_ver, 32),
        elf_sha256,
        0,
        99,
        MMU_PAGE_LOG2,
        bytes(3),
        bytes(72),
    )


def _parse_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int):
        raise ImageError(f"size must be an int number of bytes, got {size!r}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ImageError(f"size {size} out of range: must be {MIN_SIZE}..{MAX_SIZE} bytes")
    return size


def build_app(
    *,
    version: str = "1.0.0",
    project: str = "acupdate-demo",
    chip: str | int = "esp32",
    size: int = 64 * 1024,
    idf_ver: str = "v5.4.1",
    hash_appended: bool = True,
    seed: int = 0,
    date: str = "Nov 27 2026",
    time: str = "12:00:00",
) -> bytes:
    """A valid ESP app image of about `size` bytes (see the package docstring)."""
    c = resolve_chip(chip)
    size = _parse_size(size)
    tail = (HASH_LEN if hash_appended else 0) + 8  # checksum byte + average padding
    ram = _align4(min(max(size // 16, 256), RAM_SEGMENT_MAX))
    dram_len = iram_len = ram
    if size >= IROM_THRESHOLD:
        # DROM then DRAM fill whole MMU pages so the IROM data starts at offset 0x20 of a page,
        # as ESP-IDF lays flash-mapped segments out.
        pages = max(1, round(size * 0.4 / MMU_PAGE))
        drom_len = pages * MMU_PAGE - 0x10 - dram_len
        irom_off = HEADER_LEN + 3 * SEG_HEADER_LEN + drom_len + dram_len
        assert irom_off % MMU_PAGE == 0x20
        irom_len = _align4(size - irom_off - SEG_HEADER_LEN - iram_len - tail)
        if irom_len < 0x1000:
            raise AssertionError(f"layout for size {size}: IROM only {irom_len} bytes")
    else:
        irom_len = 0
        drom_len = _align4(size - HEADER_LEN - 3 * SEG_HEADER_LEN - dram_len - iram_len - tail)
    payload = _stream(f"app/{seed!r}", drom_len - APP_DESC_LEN + dram_len + irom_len + iram_len)
    elf_sha = hashlib.sha256(f"elf/{c.name}/{project}/{version}/{seed!r}".encode()).digest()
    desc = _app_desc(
        version=version,
        project=project,
        time=time,
        date=date,
        idf_ver=idf_ver,
        elf_sha256=elf_sha,
    )
    mv = memoryview(payload)
    p = drom_len - APP_DESC_LEN
    drom = desc + mv[:p]
    dram = bytes(mv[p : p + dram_len])
    p += dram_len
    irom = bytes(mv[p : p + irom_len])
    p += irom_len
    iram = bytes(mv[p : p + iram_len])
    irom_addr = c.irom + 0x20
    if c.shared_mmu:
        # Data pages are mapped after the code pages in the one MMU table.
        code_pages = -(-(irom_len + 0x20) // MMU_PAGE) if irom_len else 0
        drom_addr = c.drom + code_pages * MMU_PAGE + 0x20
    else:
        drom_addr = c.drom + 0x20
    segments = [(drom_addr, drom), (c.dram, dram)]
    if irom_len:
        segments.append((irom_addr, irom))
    segments.append((c.iram, iram))
    entry = c.iram + _align4(iram_len // 4)
    return _assemble(c, entry, segments, hash_appended)


def build_bootloader(chip: str | int = "esp32") -> bytes:
    """A valid second-stage-bootloader-like image: DRAM + 2 IRAM segments, no app descriptor."""
    c = resolve_chip(chip)
    desc = BOOTLOADER_DESC.pack(
        BOOTLOADER_DESC_MAGIC,
        bytes(3),
        1,
        b"v5.4.1",
        b"Nov 27 2026 12:00:00",
        bytes(16),
    )
    lens = (0x1000, 0x2C00, 0x1400)
    data = _stream(f"bootloader/{c.name}", sum(lens) - len(desc))
    dram = desc + data[: lens[0] - len(desc)]
    iram0 = data[lens[0] - len(desc) : lens[0] + lens[1] - len(desc)]
    iram1 = data[lens[0] + lens[1] - len(desc) :]
    segments = [(c.boot_dram, dram), (c.boot_iram0, iram0), (c.boot_iram1, iram1)]
    return _assemble(c, c.boot_iram1 + 0x100, segments, True)


def build_partition_table(partitions: list[tuple[str, int, int, int, int]] = PARTITIONS) -> bytes:
    """A binary partition table (32-byte entries, MD5 entry, 0xFF fill to 0xC00 bytes)."""
    entries = b"".join(
        struct.pack("<2sBBII16sI", b"\xaa\x50", ptype, sub, off, size, label.encode(), 0)
        for label, ptype, sub, off, size in partitions
    )
    md5 = b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(entries).digest()
    table = entries + md5
    return table + b"\xff" * (PARTITION_TABLE_LEN - len(table))


def build_merged(app: bytes | None = None, *, chip: str | int = "esp32") -> bytes:
    """Bootloader + partition table + app as one file to flash at the bootloader offset.

    Laid out as `esptool merge-bin` does: 0xFF between the parts, the partition table at
    flash 0x8000 and the app at flash 0x10000, both relative to the chip's bootloader offset
    (0x1000 on ESP32/S2, 0x2000 on P4/C5, 0x0 on the others).
    """
    c = resolve_chip(chip)
    if app is None:
        app = build_app(chip=c.name)
    app = bytes(app)
    if len(app) >= HEADER_LEN and app[0] == IMAGE_MAGIC:
        app_chip = int.from_bytes(app[12:14], "little")
        if app_chip != c.id:
            raise ImageError(
                f"app image is for chip id {app_chip}, merged download is for {c.name} (id {c.id})"
            )
    base = c.boot_offset
    out = bytearray(b"\xff" * (APP_FLASH_OFFSET - base))
    boot = build_bootloader(c.name)
    room = PARTITION_TABLE_OFFSET - base
    if len(boot) > room:
        raise AssertionError(f"bootloader {len(boot)} bytes > {room} bytes of room")
    out[: len(boot)] = boot
    table = build_partition_table()
    out[room : room + len(table)] = table
    return bytes(out) + app
