# acupdate.download.start: the start of an image download, loaded only for it
# (acupdate.config.cold):
# the request (acupdate.download.request), the reply's checks (status, size, x-MD5, x-SHA256; the
# Arduino HTTPUpdate client's texts, clear ones for what it did not check) and the first
# block's image check (acupdate.ota.image) before anything is written. acupdate.download.transfer
# does the rest; acupdate.download.resume comes back here to start over.
from micropython import const

from ..config import cold
from .request import get

_BLOCK = const(4096)
_HEAD = const(3070)  # reply heads go to buf[_HEAD:], http.LINE_MAX + 2 bytes
_HTTP_ERRORS = {401: "Unauthorized (401)", 403: "Forbidden (403)", 404: "File Not Found (404)"}
_HEX = "0123456789abcdefABCDEF"


def image(up, name, part, cid, hdrs, size, sha, deadline):
    """Start downloading image `name` for Partition `part`: None when the server answers
    304 (the board runs it), else [the open reply, begin()'s result with the first block
    not yet checked, the request target, the TLS context's holder] for
    acupdate.download.transfer.run(). `cid`: the running image's chip
    id; `hdrs`: the request's header lines; `size`: the catalog's size of the image (used
    when there is no Content-Length); `sha`: its SHA-256 (hex) or None; `deadline`: due()."""
    target = up.cfg.image_target(name)
    ctx = [None] if up.cfg.tls else None  # keeps the TLS context for a resume
    r = get(up.cfg, target, hdrs, memoryview(up.buf)[_HEAD:], deadline, ctx)
    try:
        if r.status == 304:
            r.close()
            return None
        return [r, begin(r, up, part, cid, size, sha, False), target, ctx]
    except BaseException:
        r.close()
        raise


def begin(r, up, part, cid, size, sha, chk=True):
    """A download from byte 0 in reply `r`: its head checked, its first block read into
    up.buf and (when `chk`; else the caller must, with this module unloaded: see
    Updater._update) checked before anything is written. (x-MD5, image size, SHA-256 or
    None, bytes in up.buf, the OSError if the connection dropped in the first block, else
    None)."""
    md5, n, sha = check(r, size, sha)
    r.headers = None  # read: its heap is the transfer's
    if r.chunked:
        own(r)
    mv = memoryview(up.buf)
    k = 0
    err = None
    try:
        k = r.readinto(mv if n >= _BLOCK else mv[:n])
    except OSError as e:
        err = e
    if chk and not err:
        cold("ota.image", "check", mv[:k], cid, n, part.info()[3])
    return md5, n, sha, k, err


def ishex(s, n):
    return isinstance(s, str) and len(s) == n and not s.strip(_HEX)


def check(r, size, sha):
    """(x-MD5, image size, SHA-256 or None) from the head of reply `r` to a download from
    byte 0, or a clear error. `size`: the catalog's (used without a Content-Length); `sha`:
    the SHA-256 expected (hex) or None."""
    if sha is not None and not ishex(sha, 64):
        raise ValueError("sha256 must be 64 hex digits, got %r" % (sha,))
    if r.status != 200:
        raise OSError(_HTTP_ERRORS.get(r.status) or "Wrong HTTP Code (%d)" % r.status)
    if r.length >= 0:
        size = r.length
    if not size:
        raise OSError(
            "Server Did Not Report Size: "
            + (
                "Content-Length 0"
                if r.length == 0
                else "no Content-Length, and no catalog size for this image"
            )
        )
    md5 = r.headers.get("x-md5", "")
    if not ishex(md5, 32):
        raise ValueError("Bad x-MD5 header %r: expected 32 hex digits" % md5[:40])
    s = r.headers.get("x-sha256")
    if s is not None:
        if not ishex(s, 64):
            raise ValueError("Bad x-SHA256 header %r: expected 64 hex digits" % s[:70])
        if sha and sha.lower() != s.lower():
            raise ValueError("x-SHA256 header %s differs from the expected %s" % (s, sha))
        sha = s
    return md5, size, sha


def own(r):
    """Give reply `r` a line buffer of its own for the rest (what was read ahead moves
    along): a chunked body's chunk lines must not go through the head buffer in up.buf,
    which gets the body."""
    b = bytearray(1026)  # http's line buffer size
    k = r._n - r._p
    b[:k] = r._mv[r._p : r._n]
    r._b = b
    r._mv = memoryview(b)
    r._p = 0
    r._n = k
