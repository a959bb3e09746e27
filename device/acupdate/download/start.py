# acupdate.download.start: the start of an image download from byte 0: the reply's head
# checked (status, size, x-MD5, x-SHA256, with the Arduino HTTPUpdate client's texts and
# clear ones for what it did not check) and the image's first block read into the block
# buffer, where it is checked (acupdate.ota.verify) before anything is written.
from micropython import const

from ..ota import verify

_BLOCK = const(4096)
_HTTP_ERRORS = {401: "Unauthorized (401)", 403: "Forbidden (403)", 404: "File Not Found (404)"}
_HEX = "0123456789abcdefABCDEF"


def ishex(s, n):
    """True when `s` is a str of `n` hex digits."""
    return isinstance(s, str) and len(s) == n and not s.strip(_HEX)


def begin(up, dl, r, first=True):
    """Start Download `dl` of Updater `up` from reply `r` to a request from byte 0: its head
    checked, then its first block read into up.buf (dl.have bytes) and checked before
    anything is written (a drop in the first block is left in dl.error, for a start over).
    `r` becomes dl.reply; it is closed on an error. On the `first` request of an update,
    when the slot holds the image complete already (its first block is the image's, then
    acupdate.ota.held), `r` is closed, the slot set to boot and dl.reply stays None:
    nothing to download. (A start over after a drop downloads.)"""
    try:
        check(up, dl, r)
        r.headers = None  # read: its heap is the transfer's
        if r.chunked:
            r.own_buffer()  # chunk lines must not go through up.buf, which gets the body
        mv = memoryview(up.buf)
        dl.have = 0
        dl.error = None
        try:
            dl.have = r.readinto(mv if dl.size >= _BLOCK else mv[: dl.size])
        except OSError as e:
            dl.error = e
        if dl.error is None:
            verify.check(mv[: dl.have], dl.chip, dl.size, dl.part.info()[3])
            if (
                first
                and dl.have == min(dl.size, _BLOCK)
                and _slot_starts_with(dl.part, mv[: dl.have])
            ):
                from ..ota import held

                if held.reuse(up, dl, r):  # update() twice: the slot holds it complete
                    return
    except BaseException:
        r.close()
        raise
    dl.reply = r


def _slot_starts_with(part, mv):
    # True when the first len(mv) bytes of OTA slot `part` are those in `mv` (the slot read
    # 256 bytes at a time).
    b = bytearray(256)
    n = len(mv)
    for at in range(0, n, 256):
        k = min(256, n - at)
        part.readblocks(0, b, at)
        if (b if k == 256 else memoryview(b)[:k]) != mv[at : at + k]:
            return False
    return True


def check(up, dl, r):
    """The head of reply `r` to a download from byte 0: dl.size, dl.md5 and dl.sha256 from
    it (the catalog's size and md5 stand in for a missing Content-Length and x-MD5), or an
    error that says what is wrong."""
    if r.status != 200:
        what = _HTTP_ERRORS.get(r.status) or "Wrong HTTP Code (%d)" % r.status
        raise OSError("%s for %s" % (what, dl.target))
    if r.length >= 0:
        dl.size = r.length
    if not dl.size:
        raise OSError(
            "Server Did Not Report Size: "
            + (
                "Content-Length 0"
                if r.length == 0
                else "no Content-Length, and no catalog size for this image"
            )
        )
    md5 = r.headers.get("x-md5")
    if md5 is not None:
        if not ishex(md5, 32):
            raise ValueError("Bad x-MD5 header %r: expected 32 hex digits" % md5[:40])
        dl.md5 = md5
    elif dl.md5 is None:
        raise OSError(
            "No x-MD5 header for %s, and no md5 in its catalog entry: nothing to check the "
            "image against" % dl.name
        )
    s = r.headers.get("x-sha256")
    if s is not None:
        if not ishex(s, 64):
            raise ValueError("Bad x-SHA256 header %r: expected 64 hex digits" % s[:70])
        if dl.sha256 and dl.sha256.lower() != s.lower():
            raise ValueError("x-SHA256 header %s differs from the expected %s" % (s, dl.sha256))
        dl.sha256 = s
