# acupdate.ota.image: ESP32 app images: the chip id in the header, the app descriptor
# (AppDesc), and an image's facts in a partition (ImageFacts: its length by a segment walk,
# its MD5).
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


def chip_id(block):
    """Chip id from an image's first bytes (ValueError if they are not an image header)."""
    if len(block) < _HEADER or block[0] != _MAGIC:
        raise ValueError("not an ESP32 image header (%d bytes)" % len(block))
    return struct.unpack_from("<H", block, 12)[0]


def _str(block, off, n):
    b = bytes(block[off : off + n])
    i = b.find(b"\0")
    if i >= 0:
        b = b[:i]
    try:
        return b.decode()
    except UnicodeError:
        return repr(b)


class AppDesc:
    """An app's esp_app_desc_t: version, project, time, date, idf (ESP-IDF's version); ''
    where blank (many MicroPython builds leave version and project blank)."""

    def __init__(self, block):
        if len(block) < _DESC + 144 or struct.unpack_from("<I", block, _DESC)[0] != _DESC_MAGIC:
            raise ValueError("no app descriptor at offset 32 (block of %d bytes)" % len(block))
        d = _DESC
        self.version = _str(block, d + 16, 32)
        self.project = _str(block, d + 48, 32)
        self.time = _str(block, d + 80, 16)
        self.date = _str(block, d + 96, 16)
        self.idf = _str(block, d + 112, 32)


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


class ImageFacts:
    """The image in a partition: chip (id), size (its length), md5 (hex), desc (AppDesc)."""

    def __init__(self, chip, size, md5, desc):
        self.chip = chip
        self.size = size
        self.md5 = md5
        self.desc = desc


def facts(part, buf):
    """The ImageFacts of the image in Partition `part`, read through the 4096-byte `buf`."""
    part.readblocks(0, buf)
    cid = chip_id(buf)
    desc = AppDesc(buf)
    size = image_size(lambda off, b: part.readblocks(0, b, off), part.info()[3])
    from . import md5hex

    return ImageFacts(cid, size, md5hex(part, size, buf), desc)
