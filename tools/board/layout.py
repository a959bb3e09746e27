"""Flash layout of the simulated ESP32: partition table and otadata, byte for byte.

Facts from ../shared/reference/esp32.md (partition table at 0x8000, 32-byte entries,
MD5 entry, otadata sectors with crc32 of ota_seq).
"""

from __future__ import annotations

import binascii
import hashlib
import struct
from dataclasses import dataclass

SECTOR = 0x1000
TABLE_OFFSET = 0x8000
TABLE_SIZE = 0xC00
ENTRY_MAGIC = b"\xaa\x50"
MD5_MAGIC = b"\xeb\xeb"

TYPE_APP = 0
TYPE_DATA = 1
SUBTYPE_FACTORY = 0x00
SUBTYPE_OTA_0 = 0x10
SUBTYPE_DATA_OTA = 0x00

TYPE_NAMES = {TYPE_APP: "app", TYPE_DATA: "data"}
DATA_SUBTYPES = {0x00: "ota", 0x01: "phy", 0x02: "nvs", 0x81: "fat"}

# otadata states
NEW, PENDING_VERIFY, VALID, INVALID, ABORTED = 0, 1, 2, 3, 4
UNDEFINED = 0xFFFFFFFF
STATE_NAMES = {
    NEW: "NEW",
    PENDING_VERIFY: "PENDING_VERIFY",
    VALID: "VALID",
    INVALID: "INVALID",
    ABORTED: "ABORTED",
    UNDEFINED: "UNDEFINED",
}

# MicroPython's 4 MiB OTA layout: (label, type, subtype, offset, size)
MICROPYTHON_OTA_4MB = (
    ("nvs", TYPE_DATA, 0x02, 0x9000, 0x4000),
    ("otadata", TYPE_DATA, SUBTYPE_DATA_OTA, 0xD000, 0x2000),
    ("phy_init", TYPE_DATA, 0x01, 0xF000, 0x1000),
    ("ota_0", TYPE_APP, SUBTYPE_OTA_0, 0x10000, 0x180000),
    ("ota_1", TYPE_APP, SUBTYPE_OTA_0 + 1, 0x190000, 0x180000),
    ("vfs", TYPE_DATA, 0x81, 0x310000, 0xF0000),
)


@dataclass(frozen=True)
class Part:
    label: str
    type: int
    subtype: int
    offset: int
    size: int
    flags: int = 0

    @property
    def is_ota_app(self) -> bool:
        return self.type == TYPE_APP and SUBTYPE_OTA_0 <= self.subtype < SUBTYPE_OTA_0 + 16

    @property
    def ota_index(self) -> int:
        return self.subtype - SUBTYPE_OTA_0

    def kind(self) -> str:
        if self.type == TYPE_APP:
            if self.subtype == SUBTYPE_FACTORY:
                return "app/factory"
            return f"app/ota_{self.ota_index}" if self.is_ota_app else f"app/0x{self.subtype:02x}"
        sub = DATA_SUBTYPES.get(self.subtype, f"0x{self.subtype:02x}")
        return f"data/{sub}"


def build_table(layout=MICROPYTHON_OTA_4MB) -> bytes:
    """The partition table binary: entries, the MD5 entry, then 0xFF up to 0xC00 bytes."""
    entries = b"".join(
        ENTRY_MAGIC
        + struct.pack("<BBII", ptype, sub, off, size)
        + label.encode().ljust(16, b"\0")
        + struct.pack("<I", 0)
        for label, ptype, sub, off, size in layout
    )
    md5 = MD5_MAGIC + b"\xff" * 14 + hashlib.md5(entries).digest()
    return (entries + md5).ljust(TABLE_SIZE, b"\xff")


def parse_table(blob: bytes) -> list[Part]:
    """Parse a partition table; raises ValueError on a bad entry or MD5."""
    parts: list[Part] = []
    for pos in range(0, len(blob) - 31, 32):
        entry = blob[pos : pos + 32]
        if entry[:2] == ENTRY_MAGIC:
            ptype, sub, off, size = struct.unpack_from("<BBII", entry, 2)
            label = entry[12:28].split(b"\0", 1)[0].decode()
            (flags,) = struct.unpack_from("<I", entry, 28)
            parts.append(Part(label, ptype, sub, off, size, flags))
        elif entry[:2] == MD5_MAGIC:
            if hashlib.md5(blob[:pos]).digest() != entry[16:32]:
                raise ValueError("partition table MD5 mismatch")
            return parts
        elif entry == b"\xff" * 32:
            return parts
        else:
            raise ValueError(f"bad partition table entry at 0x{TABLE_OFFSET + pos:x}")
    return parts


@dataclass(frozen=True)
class OtaEntry:
    sector: int
    seq: int
    state: int
    crc: int

    @property
    def erased(self) -> bool:
        return self.seq == 0xFFFFFFFF

    @property
    def crc_ok(self) -> bool:
        return self.crc == entry_crc(self.seq)

    @property
    def selectable(self) -> bool:
        """What the bootloader may boot: written, crc right, not INVALID or ABORTED."""
        return not self.erased and self.crc_ok and self.state not in (INVALID, ABORTED)

    def describe(self) -> str:
        if self.erased:
            return "erased"
        state = STATE_NAMES.get(self.state, f"0x{self.state:08x}")
        crc = "" if self.crc_ok else " (bad crc)"
        return f"seq={self.seq} state={state}{crc}"


def entry_crc(seq: int) -> int:
    return binascii.crc32(struct.pack("<I", seq), 0xFFFFFFFF)


def pack_entry(seq: int, state: int) -> bytes:
    return struct.pack("<I", seq) + b"\xff" * 20 + struct.pack("<II", state, entry_crc(seq))


def parse_otadata(blob: bytes) -> list[OtaEntry]:
    """The two otadata sectors' entries (blob is the whole 0x2000-byte partition)."""
    out = []
    for sector in (0, 1):
        raw = blob[sector * SECTOR : sector * SECTOR + 32]
        seq = struct.unpack_from("<I", raw, 0)[0]
        state, crc = struct.unpack_from("<II", raw, 24)
        out.append(OtaEntry(sector, seq, state, crc))
    return out


def active_entry(entries: list[OtaEntry]) -> OtaEntry | None:
    """The selectable entry with the highest ota_seq, as ESP-IDF picks it."""
    best = None
    for e in entries:
        if e.selectable and (best is None or e.seq > best.seq):
            best = e
    return best
