# acupdate.ota.held: an update whose image the target slot holds already, complete (an
# update() run twice before a reset): the slot's MD5, read back, equals the server's x-MD5,
# so the image is not downloaded again; its first block is checked as a download's is,
# then the slot is set to boot. With trusted signing keys in the settings, the image is
# downloaded and checked again instead (the signature check reads what was written).
import binascii
import hashlib

from micropython import const

_HALF = const(2048)  # reads go through the block buffer's first half: the reply's head
# and the bytes read ahead of it are in its last 1026 bytes (download.request.HEAD_AT)


def holds(up, dl, r):
    """True when the slot of Download `dl` holds the image of reply `r` (200, its head
    checked here) complete: first byte 0xE9 and the MD5 of its first dl.size bytes equal
    to the x-MD5 (or the catalog's md5)."""
    import acupdate.boardconfig
    import acupdate.download.start

    acupdate.download.start.check(up, dl, r)
    if acupdate.boardconfig.load().get("signing") is not None:
        return False
    part = dl.part
    size = dl.size
    if size > part.ioctl(4, None) * 4096:
        return False
    mv = memoryview(up.buf)[:_HALF]
    part.readblocks(0, mv, 0)
    if mv[0] != 0xE9:
        return False
    h = hashlib.md5()
    at = 0
    while at < size:
        part.readblocks(at // 4096, mv, at % 4096)
        h.update(mv if size - at >= _HALF else mv[: size - at])
        at += _HALF
    return binascii.hexlify(h.digest()).decode() == dl.md5.lower()


def adopt(up, dl):
    """The held image of Download `dl`: its first block checked (ota.verify), then
    set_boot(). Returns its MD5."""
    from . import verify

    part = dl.part
    buf = up.buf
    part.readblocks(0, buf)
    verify.check(memoryview(buf)[: min(dl.size, 4096)], dl.chip, dl.size, part.info()[3])
    try:
        part.set_boot()
    except OSError as e:
        from .errors import words

        raise OSError("ESP-IDF refused to boot the image in %s: %s" % (part.info()[4], words(e)))
    return dl.md5.lower()
