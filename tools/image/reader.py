"""Walk and check an ESP image: header, segments, checksum, appended SHA-256, app descriptor."""

import hashlib
from dataclasses import dataclass, field

from .format import (
    APP_DESC,
    APP_DESC_LEN,
    APP_DESC_MAGIC,
    CHECKSUM_SEED,
    CHIP_NAMES,
    HASH_LEN,
    HEADER,
    HEADER_LEN,
    IMAGE_MAGIC,
    MAX_SEGMENTS,
    SEG_HEADER,
    SEG_HEADER_LEN,
    ImageError,
    checksum_offset,
    cstr,
    xor_bytes,
)
from .signature import SignatureSector, read_sector


@dataclass
class ImageInfo:
    """What inspect() found. Fields are None when the data did not get that far."""

    magic_ok: bool = False
    chip_id: int | None = None
    chip_name: str | None = None
    entry: int | None = None
    segments: list[tuple[int, int, int]] = field(default_factory=list)
    checksum_stored: int | None = None
    checksum_computed: int | None = None
    checksum_ok: bool = False
    hash_appended: bool = False
    hash_ok: bool | None = None
    length: int | None = None
    app_desc: dict | None = None
    is_app: bool = False
    is_merged: bool = False
    errors: list[str] = field(default_factory=list)
    valid: bool = False
    data_length: int = 0
    signature: SignatureSector | None = None

    def summary(self) -> str:
        """A readable multi-line report."""

        def hx(v: int | None, width: int = 2) -> str:
            return "?" if v is None else f"0x{v:0{width}x}"

        lines = [f"valid: {'yes' if self.valid else 'NO'}"]
        if self.is_app:
            kind = "app image"
        elif self.is_merged:
            kind = "no app descriptor: bootloader first (merged download?), not an OTA app"
        else:
            kind = "unknown"
        lines.append(f"kind: {kind}")
        chip = self.chip_name or "unknown"
        lines.append(f"magic: {'ok' if self.magic_ok else 'BAD'}")
        lines.append(f"chip: {chip} (id {'?' if self.chip_id is None else self.chip_id})")
        lines.append(f"entry: {hx(self.entry, 8)}")
        lines.append(f"segments: {len(self.segments)}")
        for i, (addr, length, off) in enumerate(self.segments):
            lines.append(f"  {i}: load 0x{addr:08x} length {length:7d} at file offset 0x{off:x}")
        state = "ok" if self.checksum_ok else "BAD"
        lines.append(
            f"checksum: stored {hx(self.checksum_stored)} computed "
            f"{hx(self.checksum_computed)} ({state})"
        )
        if self.hash_appended:
            lines.append(f"sha256 appended: {'ok' if self.hash_ok else 'BAD'}")
        else:
            lines.append("sha256 appended: no")
        if self.length is not None:
            extra = self.data_length - self.length
            note = f" (+{extra} bytes after it)" if extra > 0 else ""
            lines.append(f"image length: {self.length} bytes{note}")
        if self.signature is not None:
            lines += self.signature.lines()
        elif self.length is not None:
            lines.append("signature sector: none (unsigned)")
        if self.app_desc is not None:
            d = self.app_desc
            lines.append(f"project: {d['project_name']!r}  version: {d['version']!r}")
            lines.append(f"built: {d['date']} {d['time']}  idf: {d['idf_ver']}")
            lines.append(f"secure_version: {d['secure_version']}  elf sha256: {d['elf_sha256']}")
        for err in self.errors:
            lines.append(f"error: {err}")
        return "\n".join(lines)


def _walk(data: memoryview, info: ImageInfo) -> int | None:
    """Fill header and segment fields; return the end offset of the segments, or None."""
    n = len(data)
    if n < HEADER_LEN:
        info.errors.append(f"too short: {n} bytes, an image header needs {HEADER_LEN}")
        return None
    (magic, count, _mode, _sf, entry, _wp, _d0, _d1, _d2, chip_id, _mr, _mrf, _xrf, _res,
     hashed) = HEADER.unpack_from(data, 0)  # fmt: skip
    info.magic_ok = magic == IMAGE_MAGIC
    if not info.magic_ok:
        info.errors.append(f"magic 0x{magic:02x} != 0x{IMAGE_MAGIC:02x}: not an ESP image")
    info.chip_id = chip_id
    info.chip_name = CHIP_NAMES.get(chip_id)
    info.entry = entry
    if hashed in (0, 1):
        info.hash_appended = hashed == 1
    else:
        info.errors.append(f"hash-appended byte 23 is 0x{hashed:02x}, expected 0 or 1")
    if count == 0 or count > MAX_SEGMENTS:
        info.errors.append(f"segment count {count} out of range 1..{MAX_SEGMENTS}")
        return None
    pos = HEADER_LEN
    for i in range(count):
        if pos + SEG_HEADER_LEN > n:
            info.errors.append(
                f"truncated: segment {i} header needs {SEG_HEADER_LEN} bytes at offset {pos}, "
                f"file has {n}"
            )
            return None
        addr, length = SEG_HEADER.unpack_from(data, pos)
        pos += SEG_HEADER_LEN
        if pos + length > n:
            info.errors.append(
                f"truncated: segment {i} needs {length} bytes at offset {pos}, file has {n}"
            )
            return None
        if length % 4:
            info.errors.append(f"segment {i} length {length} is not a multiple of 4")
        info.segments.append((addr, length, pos))
        pos += length
    return pos


def inspect(data: bytes | bytearray | memoryview) -> ImageInfo:
    """Check an image; never raises on bad data, problems go to .errors."""
    info = ImageInfo()
    try:
        mv = memoryview(data).cast("B")
    except TypeError as exc:
        info.errors.append(f"not bytes: {type(data).__name__} ({exc})")
        return info
    n = info.data_length = len(mv)
    end = _walk(mv, info)
    if end is not None:
        cpos = checksum_offset(end)
        computed = CHECKSUM_SEED
        for _addr, length, off in info.segments:
            computed = xor_bytes(mv[off : off + length], computed)
        info.checksum_computed = computed
        if cpos >= n:
            info.errors.append(f"truncated: checksum byte at offset {cpos}, file has {n} bytes")
        else:
            info.checksum_stored = mv[cpos]
            info.checksum_ok = info.checksum_stored == computed
            if not info.checksum_ok:
                info.errors.append(
                    f"checksum 0x{info.checksum_stored:02x} != computed 0x{computed:02x}"
                )
            if info.hash_appended:
                hend = cpos + 1 + HASH_LEN
                if hend > n:
                    info.errors.append(
                        f"truncated: SHA-256 needs {HASH_LEN} bytes at offset {cpos + 1}, "
                        f"file has {n}"
                    )
                    info.hash_ok = False
                else:
                    stored = bytes(mv[cpos + 1 : hend])
                    calc = hashlib.sha256(mv[: cpos + 1]).digest()
                    info.hash_ok = stored == calc
                    if not info.hash_ok:
                        info.errors.append(
                            f"SHA-256 {stored.hex()[:16]}... != computed {calc.hex()[:16]}..."
                        )
                    info.length = hend
            else:
                info.length = cpos + 1
        if info.segments:
            _addr, length, off = info.segments[0]
            if length >= APP_DESC_LEN:
                f = APP_DESC.unpack_from(mv, off)
                if f[0] == APP_DESC_MAGIC:
                    info.is_app = True
                    info.app_desc = {
                        "magic_ok": True,
                        "secure_version": f[1],
                        "version": cstr(f[3]),
                        "project_name": cstr(f[4]),
                        "time": cstr(f[5]),
                        "date": cstr(f[6]),
                        "idf_ver": cstr(f[7]),
                        "elf_sha256": f[8].hex(),
                    }
        info.is_merged = info.magic_ok and bool(info.segments) and not info.is_app
        if info.length is not None:
            info.signature = read_sector(mv, info.length)
            if info.signature is not None:
                info.errors += info.signature.errors()
    info.valid = not info.errors
    return info


def image_length(data: bytes | bytearray | memoryview) -> int:
    """Length of the image proper (header to checksum, plus the SHA-256 when appended).

    Raises ImageError when the data cannot be walked that far.
    """
    info = ImageInfo()
    try:
        mv = memoryview(data).cast("B")
    except TypeError as exc:
        raise ImageError(f"image data must be bytes, got {type(data).__name__}") from exc
    end = _walk(mv, info)
    if not info.magic_ok or end is None:
        raise ImageError("cannot walk image: " + "; ".join(info.errors))
    length = checksum_offset(end) + 1 + (HASH_LEN if info.hash_appended else 0)
    if length > len(mv):
        raise ImageError(f"truncated: image needs {length} bytes, data has {len(mv)}")
    return length
