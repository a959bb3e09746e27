# acupdate.ota.signature: ESP-IDF Secure Boot V2 signatures (RSA-3072-PSS, ECDSA P-256),
# checked on the board before an image may boot.
#
# `espsecure sign-data --version 2` pads the app image with 0xFF to a multiple of 4096 and
# appends one 4096-byte signature sector: up to 3 blocks of 1216 bytes, the rest 0xFF. The
# sector starts where ESP-IDF looks for it: the app's end (its segment walk,
# acupdate.ota.image.image_size) rounded up to 4 KiB. The check reads the image where it
# was written, once the download is complete (acupdate.ota.writer, before the image's
# header goes to flash; acupdate.ota.signers for the slots): nothing of it is in the heap
# while the image streams in.
#
# A block, little-endian: magic 0xE7, version, the image's SHA-256 (at 4), a key, a
# signature, a CRC-32 of bytes 0..1195 (at 1196), 16 zero bytes. Version 2 (RSA-3072): n
# (36, 384 bytes), e (420), rinv and m' (for the hardware), the signature (812, 384 bytes);
# RSASSA-PSS over the SHA-256 of everything before the sector, MGF1-SHA256, 32 bytes of
# salt, emBits 3071 (RFC 8017, 9.1.2). Version 3 (ECDSA): hash type (2; 0 = SHA-256), curve
# id (36; 2 = P-256), the point x, y (37), the signature r, s (101; acupdate.ota.ecdsa,
# loaded for it). A key's digest (what a board trusts: `espsecure digest-sbv2-public-key`)
# is the SHA-256 of the key as stored: bytes 36..811 (RSA), 36..100 (ECDSA). Any block with
# a trusted key and a good signature is enough (as ESP-IDF's
# esp_secure_boot_verify_rsa_signature_block).
#
# Two steps, two modules, so that the arithmetic has the heap to itself: find() here (the
# image's length against its app's, its SHA-256, the blocks: magic, CRC-32, version, key
# digest among the trusted ones), then acupdate.ota.sigverify.first() (the signatures of the
# blocks found, read again from flash); acupdate.ota.signed takes them in turn.
import binascii
import hashlib
import struct

from micropython import const

SECTOR = const(4096)
BLOCK = const(1216)
_BLOCKS = const(3)
_CRC_END = const(1196)
_KEY = const(36)  # the key: n, e, rinv, m' up to _SIG (RSA); curve id, x, y up to _P256
_SIG = const(812)
_P256 = const(101)


def app_length(read, size, buf):
    """The app's length: header, segments, padding and checksum byte, and the SHA-256 when
    the header says one follows (as acupdate.ota.image.image_size walks it; here so that
    the check does not load that module)."""
    h = memoryview(buf)[:24]
    read(0, h)
    count = h[1]
    if h[0] != 0xE9 or not 0 < count <= 16 or h[23] > 1:
        raise ValueError(
            "not an app image: first byte 0x%02X, %d segments, hash flag %d" % (h[0], count, h[23])
        )
    pos = 24
    end = 32 * h[23]
    seg = h[:8]
    for _ in range(count):
        if pos + 8 > size:
            raise ValueError("image cut short: %d bytes, a segment header at %d" % (size, pos))
        read(pos, seg)
        pos += 8 + struct.unpack_from("<I", seg, 4)[0]
    return (pos | 15) + 1 + end


def find(read, size, app, trusted, required, buf):
    """The signature blocks of an image that a trusted key made: (sector offset, the
    image's SHA-256, [(block, index in `trusted` of its key), ...]) for
    acupdate.ota.sigverify.first(); None for an image without a signature sector when
    `required` is false; else ValueError, saying why.

    read(offset, mv) fills the memoryview mv with the image's bytes at offset; size: the
    image's length; app: its app's length (acupdate.ota.image.image_size: the segment
    walk); trusted: key digests, 32 bytes each; buf: a 4096-byte bytearray to read
    through."""
    mv = memoryview(buf)
    s = (app + SECTOR - 1) & ~(SECTOR - 1)  # the signature sector
    if size <= s:
        if not required:
            return None
        if size == app:
            raise ValueError(
                "unsigned image (%d bytes, no signature sector): this board takes signed "
                "images only" % size
            )
        raise ValueError(
            "signature sector missing: the image ends at %d, padded, where it should start" % size
        )
    if size < s + SECTOR:
        raise ValueError("signature sector cut short: %d of its %d bytes" % (size - s, SECTOR))
    if size > s + SECTOR:
        raise ValueError("%d bytes after the signature sector (at 0x%X)" % (size - s - SECTOR, s))
    h = hashlib.sha256()
    at = 0
    while at < s:
        read(at, mv)
        h.update(mv)
        at += SECTOR
    digest = h.digest()
    blk = mv[:BLOCK]
    found = []
    err = None
    rank = -1
    for i in range(_BLOCKS):
        read(s + i * BLOCK, blk)
        got = _block(blk, i, trusted, s)
        if isinstance(got, int):
            found.append((i, got))
        elif got and got[0] > rank:  # the most telling reason, the first of its rank
            rank, err = got
    if not found:
        raise ValueError(err)
    return s, digest, found


def _block(b, i, trusted, at):
    """Block i (a memoryview of its 1216 bytes): the index of its key in `trusted`; else
    (rank, why): an unknown key (2) tells more than a broken block (1), than none (0); None
    for an empty slot."""
    if b[0] != 0xE7:
        if i:  # blocks 1 and 2 are absent (0xFF) when one key signed
            return None
        return 0, "no signature block at 0x%X (first byte 0x%02X, a block starts with 0xE7)" % (
            at,
            b[0],
        )
    stored = struct.unpack_from("<I", b, _CRC_END)[0]
    crc = binascii.crc32(b[:_CRC_END])
    if crc != stored:
        return 1, "signature block %d: CRC-32 0x%08X, its bytes give 0x%08X" % (i, stored, crc)
    v = b[1]
    if v == 2:
        key = hashlib.sha256(b[_KEY:_SIG]).digest()
    elif v == 3:  # ECDSA: hash type at 2, curve id at 36, the point (x, y), then (r, s)
        if b[2]:
            return 1, (
                "signature block %d: ECDSA with hash type %d (not SHA-256), this board checks "
                "P-256 with SHA-256 only" % (i, b[2])
            )
        if b[_KEY] != 2:
            return 1, (
                "signature block %d: ECDSA on curve id %d (not P-256), this board checks "
                "P-256 with SHA-256 only" % (i, b[_KEY])
            )
        key = hashlib.sha256(b[_KEY:_P256]).digest()
    else:
        return 1, (
            "signature block %d claims version %d, this board checks versions 2 "
            "(RSA-3072-PSS) and 3 (ECDSA P-256)" % (i, v)
        )
    k = 0
    for t in trusted:
        if t == key:
            return k
        k += 1
    return 2, "signature block %d: key %s is not trusted" % (i, binascii.hexlify(key).decode())
