# acupdate.ota.sigverify: the signatures of the signature blocks a trusted key made (found by
# acupdate.ota.signature.find; for the image just written: acupdate.ota.signed),
# read again from flash: RSA-3072-PSS (s^e mod n, then EMSA-PSS-VERIFY, RFC 8017 9.1.2:
# MGF1-SHA256, 32 bytes of salt, emBits 3071), ECDSA P-256 in acupdate.ota.ecdsa. The
# arithmetic keeps every number under ~400 bytes (see _mulmod).
import binascii
import gc
import hashlib
import struct

from micropython import const

_BLOCK = const(1216)
_KEY = const(36)  # n (RSA, up to _E); the curve id (ECDSA), then x, y, r, s
_E = const(420)
_SIG = const(812)
_CRC_END = const(1196)
_EM = const(384)  # RSA-3072: the signature and n are 384 bytes
_DB = const(351)  # EM = maskedDB (351) || H (32) || 0xBC
_PAD = const(318)  # DB = 318 zero bytes || 0x01 || salt (32)
_LIMB = const(32)  # bits of b per step of _mulmod
_MASK = const(0xFFFFFFFF)


def _hex(b):
    return binascii.hexlify(b).decode()


def first(job, buf):
    """The key index of the first block of `job` whose signature verifies; else ValueError,
    naming the first one's failure. job: [read(offset, mv), the signature sector's offset,
    the image's SHA-256, [(block, index of its trusted key)]] (acupdate.ota.signature.find);
    buf: a 4096-byte bytearray to read through."""
    read, at, digest, found = job
    gc.collect()
    b = memoryview(buf)[:_BLOCK]
    err = None
    for i, k in found:
        read(at + i * _BLOCK, b)
        got = _verify(b, i, k, digest)
        if isinstance(got, int):
            return got
        err = err or got
    raise ValueError(err)


def _verify(b, i, k, digest):
    # Block i, whose key is trusted key k: k when it signs `digest`, else why not.
    if b[1] == 2:
        p = _pss(
            int.from_bytes(b[_SIG:_CRC_END], "little"),
            struct.unpack_from("<I", b, _E)[0],
            int.from_bytes(b[_KEY:_E], "little"),
        )

        def signs(d):
            return p and _h(d, p[1]) == p[0]

    else:
        from . import ecdsa

        q = [int.from_bytes(b[o : o + 32], "little") for o in range(_KEY + 1, _KEY + 129, 32)]

        def signs(d):
            return ecdsa.verify(q[0], q[1], q[2], q[3], d)

    signed = bytes(b[4:_KEY])
    if signs(digest):
        if signed == digest:
            return k
        return "signature block %d: its digest %s is not the image's %s" % (
            i,
            _hex(signed),
            _hex(digest),
        )
    if signed != digest and signs(signed):
        return "image changed after signing: SHA-256 %s, key %d signed %s" % (
            _hex(digest),
            k,
            _hex(signed),
        )
    return "signature block %d: bad signature (key %d)" % (i, k)


def _pss(s, e, n):
    # RSASSA-PSS: (H, salt) from the encoded message EM = s^e mod n, or None when EM is
    # not one (MGF1-SHA256, emBits 3071).
    if s >= n:
        return None
    # s^e mod n, square and multiply from e's top bit, each product reduced a limb of b at
    # a time (_mulmod): no number over ~400 bytes, where pow(s, e, n) and x * x % n make
    # 800-byte ones that a 48 KiB agent's heap does not always have room for at once.
    gc.collect()
    x = 1
    for i in range(31, -1, -1):
        x = _mulmod(x, x, n)
        if e >> i & 1:
            x = _mulmod(x, s, n)
    em = x.to_bytes(_EM, "big")
    x = None
    if em[_EM - 1] != 0xBC or em[0] & 0x80:
        return None
    h = em[_DB : _EM - 1]
    salt = bytearray(32)
    i = 0
    for c in range(11):  # DB = maskedDB xor MGF1(H): 11 x 32 bytes cover it
        m = hashlib.sha256(h)
        m.update(struct.pack(">I", c))
        for x in m.digest():
            if i == _DB:
                break
            x ^= em[i]
            if not i:
                x &= 0x7F  # the top bit is not part of DB (emBits 3071)
            if i > _PAD:
                salt[i - _PAD - 1] = x
            elif x != (1 if i == _PAD else 0):  # DB: 318 zero bytes, 0x01, the salt
                return None
            i += 1
    return h, salt


def _mulmod(a, b, n):
    # a * b mod n (a, b < n, 3072 bits), b taken _LIMB bits at a time from the top
    acc = 0
    for i in range(3072 - _LIMB, -1, -_LIMB):
        acc = ((acc << _LIMB) + a * (b >> i & _MASK)) % n
    return acc


def _h(digest, salt):
    # H = SHA-256(8 zero bytes || digest || salt)
    m = hashlib.sha256(b"\0\0\0\0\0\0\0\0")
    m.update(digest)
    m.update(salt)
    return m.digest()
