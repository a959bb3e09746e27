# acupdate.ota.verify: a download's first block checked before anything is written, as the
# Arduino Update class's "Verify Bin Header" does and more: the magic, the app descriptor (a
# merged bootloader+app download has none), the chip, the size against the slot's.
import struct

from micropython import const

_MAGIC = const(0xE9)
_DESC_MAGIC = const(0xABCD5432)  # esp_app_desc_t, at image offset 32 in an app
_DESC = const(32)
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
