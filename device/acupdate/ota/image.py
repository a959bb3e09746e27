# acupdate.ota.image: ESP32 app image checks on the first block, before anything is
# written, and an image's facts in a partition (its real length by a segment walk, MD5).
# Layout: 24-byte header (magic 0xE9, segment count, ..., chip id at 12, hash flag at 23),
# then segments (8-byte header: load address, length; then data), zero padding so the
# checksum byte ends a 16-byte block, then an optional 32-byte SHA-256.
import struct

from micropython import const

_MAGIC = const(0xE9)
_DESC_MAGIC = const(0xABCD5432)  # esp_app_desc_t, at image offset 32 in an app
_HEADER = const(24)
_DESC = const(32)
_MAX_SEGMENTS = const(16)  # ESP-IDF's ESP_IMAGE_MAX_SEGMENTS
# Chip names by ESP-IDF chip id, from 0 (ids without a chip are empty).
_CHIPS = (
    "ESP32,,ESP32-S2,,,ESP32-C3,,,,ESP32-S3,,,ESP32-C2,ESP32-C6,,,ESP32-H2,,ESP32-P4,,"
    "ESP32-C61,,,ESP32-C5"
)


def chip_name(cid):
    """'ESP32-S3 (chip id 9)' for 9: the chip's name and its id."""
    names = _CHIPS.split(",")
    name = names[cid] if 0 <= cid < len(names) else ""
    return "%s (chip id %d)" % (name or "unknown chip", cid)


def chip_id(block):
    """Chip id from an image's first bytes (ValueError if they are not an image header)."""
    if len(block) < _HEADER or block[0] != _MAGIC:
        raise ValueError("not an ESP32 image header (%d bytes)" % len(block))
    return struct.unpack_from("<H", block, 12)[0]


def check(block, chip=None, size=None, space=None):
    """Refuse a download from its first block (at least 36 bytes, all there are if shorter).

    chip: the running image's chip id; size: the download's length (Content-Length);
    space: the target partition's size. Returns the image's chip id; ValueError if bad."""
    n = len(block)
    if not n or block[0] != _MAGIC:
        raise ValueError(
            "Verify Bin Header Failed: first byte is 0x%02X, an ESP32 image starts with 0xE9"
            % (block[0] if n else -1)
        )
    if n < _DESC + 4:
        raise ValueError("Verify Bin Header Failed: image is only %d bytes" % n)
    cid, dm = struct.unpack_from("<H", block, 12)[0], struct.unpack_from("<I", block, _DESC)[0]
    if dm != _DESC_MAGIC:
        raise ValueError(
            "Not an app image (offset 32 holds 0x%08X, not the app descriptor's 0xABCD5432): "
            "a merged bootloader+app download cannot go into an OTA slot; use the app .bin" % dm
        )
    if chip is not None and cid != chip:
        raise ValueError("Image is for %s, this board is %s" % (chip_name(cid), chip_name(chip)))
    if size is not None and space is not None and size > space:
        raise ValueError(
            "Not Enough space: image is %d bytes, the OTA partition holds %d" % (size, space)
        )
    return cid


def _str(block, off, n):
    b = bytes(block[off : off + n])
    i = b.find(b"\0")
    if i >= 0:
        b = b[:i]
    try:
        return b.decode()
    except UnicodeError:
        return repr(b)


def app_desc(block):
    """(version, project_name, time, date, idf_ver) from an app's first block ('' if blank)."""
    if len(block) < _DESC + 144 or struct.unpack_from("<I", block, _DESC)[0] != _DESC_MAGIC:
        raise ValueError("no app descriptor at offset 32 (block of %d bytes)" % len(block))
    d = _DESC
    return (
        _str(block, d + 16, 32),
        _str(block, d + 48, 32),
        _str(block, d + 80, 16),
        _str(block, d + 96, 16),
        _str(block, d + 112, 32),
    )


def image_size(read, limit):
    """Length of the image at offset 0 of a partition: segments, padding, checksum byte
    and the appended SHA-256 when the header announces one (not a signature block).

    read(offset, buf) fills buf with the bytes at `offset`; limit: the partition size."""
    h = bytearray(_HEADER)
    read(0, h)
    if h[0] != _MAGIC:
        raise ValueError("no image: first byte 0x%02X, expected 0xE9" % h[0])
    count = h[1]
    if not 0 < count <= _MAX_SEGMENTS:
        raise ValueError("image has %d segments, expected 1..%d" % (count, _MAX_SEGMENTS))
    hashed = h[23]
    if hashed > 1:
        raise ValueError("image hash flag is %d, expected 0 or 1" % hashed)
    seg = memoryview(h)[:8]
    pos = _HEADER
    for i in range(count):
        if pos + 8 > limit:
            raise ValueError("segment %d header at %d is past the end (%d)" % (i, pos, limit))
        read(pos, seg)
        n = struct.unpack_from("<I", h, 4)[0]
        pos += 8 + n
        if pos > limit:
            raise ValueError("segment %d (%d bytes) runs past the end (%d)" % (i, n, limit))
    pos = (pos | 15) + 1 + 32 * hashed  # zero padding, the checksum byte ends a 16-byte block
    if pos > limit:
        raise ValueError("image of %d bytes does not fit in %d" % (pos, limit))
    return pos


def facts(part, buf):
    """(chip id, image length, md5 hex, (version, project, time, date, idf_ver)) of the
    image in Partition `part`, read through the 4096-byte `buf`."""
    import binascii
    import hashlib

    part.readblocks(0, buf)
    cid = chip_id(buf)
    desc = app_desc(buf)
    size = image_size(lambda off, b: part.readblocks(0, b, off), part.info()[3])
    h = hashlib.md5()
    mv = memoryview(buf)
    left = size
    blk = 0
    while left > 0:
        part.readblocks(blk, buf)
        h.update(mv if left >= 4096 else mv[:left])
        left -= 4096
        blk += 1
    return cid, size, binascii.hexlify(h.digest()).decode(), desc
