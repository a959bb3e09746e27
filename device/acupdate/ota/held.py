# acupdate.ota.held: an update whose image the target slot holds already, complete (an
# update() run twice before a reset). acupdate.download.start loads it only when the slot's
# first block equals the image's first block, just read: then the MD5 of the whole slot,
# read back, is compared with the expected one (x-MD5, or the catalog's md5); if equal, the
# image is not downloaded again: its first block was checked as a download's is, and the
# slot is set to boot. With trusted signing keys in the settings, the image is downloaded
# and checked again instead (the signature check reads what was written).
import binascii
import hashlib

from micropython import const

_READ = const(512)  # the slot is read through a buffer of its own: the block buffer holds
# the image's first block, which the download still needs when the slot differs


def reuse(up, dl, r):
    """When the slot of Download `dl` holds its image complete (holds()): reply `r` closed,
    the slot set to boot, up.kept set to the slot's label; returns the image's MD5. Else
    None, with `r` still open for the download."""
    if not holds(dl):
        return None
    r.close()
    part = dl.part
    try:
        part.set_boot()
    except OSError as e:
        from .errors import words

        raise OSError("ESP-IDF refused to boot the image in %s: %s" % (part.info()[4], words(e)))
    up.kept = part.info()[4]
    return dl.md5.lower()


def holds(dl):
    """True when the slot of Download `dl` (dl.size and dl.md5 known) holds the image
    complete: the MD5 of its first dl.size bytes equal to dl.md5; False too when the
    settings name trusted signing keys."""
    import acupdate.boardconfig

    if acupdate.boardconfig.load().get("signing") is not None:
        return False
    part = dl.part
    size = dl.size
    if size > part.ioctl(4, None) * 4096:
        return False
    buf = bytearray(_READ)
    h = hashlib.md5()
    at = 0
    while at < size:
        part.readblocks(at // 4096, buf, at % 4096)
        h.update(buf if size - at >= _READ else memoryview(buf)[: size - at])
        at += _READ
    return binascii.hexlify(h.digest()).decode() == dl.md5.lower()
