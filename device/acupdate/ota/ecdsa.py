# acupdate.ota.ecdsa: ECDSA signature verification on NIST P-256 (FIPS 186-4, SEC 1 4.1.4)
# for Secure Boot V2 signature blocks of version 3 (acupdate.ota.signature loads it only
# for such a block). Points in Jacobian coordinates (x = X/Z^2, y = Y/Z^3; Z = 0 is the
# point at infinity) on y^2 = x^3 - 3x + b; u1*G + u2*Q in one pass (Shamir's trick).
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
_GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
_GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5


def _double(X, Y, Z):
    # dbl-2001-b (a = -3)
    if not Z:
        return X, Y, Z
    d = Z * Z % _P
    g = Y * Y % _P
    b = X * g % _P
    a = 3 * (X - d) * (X + d) % _P
    X3 = (a * a - 8 * b) % _P
    return X3, (a * (4 * b - X3) - 8 * g * g) % _P, ((Y + Z) * (Y + Z) - g - d) % _P


def _add(X, Y, Z, x, y):
    # (X, Y, Z) + the affine point (x, y): madd-2004-hmv
    if not Z:
        return x, y, 1
    zz = Z * Z % _P
    h = (x * zz - X) % _P
    r = (y * Z * zz - Y) % _P
    if not h:
        return _double(X, Y, Z) if not r else (1, 1, 0)
    hh = h * h % _P
    hhh = h * hh % _P
    v = X * hh % _P
    X3 = (r * r - hhh - 2 * v) % _P
    return X3, (r * (v - X3) - Y * hhh) % _P, Z * h % _P


def _affine(X, Y, Z):
    zi = pow(Z, _P - 2, _P)
    zz = zi * zi % _P
    return X * zz % _P, Y * zz * zi % _P


def verify(x, y, r, s, digest):
    """True when (r, s) is a signature of the 32-byte `digest` (taken as the hash, as
    espsecure signs it: Prehashed SHA-256) by the public key (x, y) on P-256."""
    if not (0 < r < _N and 0 < s < _N and 0 <= x < _P and 0 <= y < _P):
        return False
    if (y * y - x * x * x + 3 * x - _B) % _P:
        return False  # not a point of the curve
    w = pow(s, _N - 2, _N)
    u1 = int.from_bytes(digest, "big") * w % _N
    u2 = r * w % _N
    gq = _add(_GX, _GY, 1, x, y)
    pts = (None, (_GX, _GY), (x, y), _affine(*gq) if gq[2] else None)
    X, Y, Z = 1, 1, 0
    for i in range(255, -1, -1):
        X, Y, Z = _double(X, Y, Z)
        p = pts[(u1 >> i & 1) | (u2 >> i & 1) << 1]
        if p:
            X, Y, Z = _add(X, Y, Z, p[0], p[1])
    return bool(Z) and _affine(X, Y, Z)[0] % _N == r
