"""Secure Boot V2 signature sectors, as `espsecure sign-data --version 2` appends them.

A signed image is the app image padded with 0xFF to a multiple of 4096 bytes, then one
4096-byte signature sector: up to 3 signature blocks of 1216 bytes, the rest 0xFF (see
/work/shared/reference/signing.md). The sector starts where ESP-IDF looks for it: the app
image's end rounded up to 4 KiB.

    read_sector(data, app_length) -> SignatureSector | None   what the sector holds
    key_digest(pem) -> bytes   the 32 bytes a board trusts (`espsecure digest-sbv2-public-key`)
                               for an RSA-3072 or an ECDSA P-256 key
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

SECTOR = 4096
BLOCK = 1216
MAX_BLOCKS = 3
MAGIC = 0xE7
RSA_VERSION = 2
ECDSA_VERSION = 3
CRC_END = 1196  # the CRC-32 covers bytes 0..1195
# magic, version, (2 zero bytes), image digest, n, e, rinv, m', signature, CRC, (16 zero)
RSA_BLOCK = struct.Struct("<BBxx32s384sI384sI384sI16x")
# magic, version, hash type, (zero), image digest, curve id, point, signature (r, s), ..., CRC
ECDSA_BLOCK = struct.Struct("<BBBx32sB64s64s1031xI16x")
RSA_KEY = slice(36, 812)  # n, e, rinv, m' exactly as stored: what the key digest covers
ECDSA_P256_KEY = slice(36, 101)  # curve id and the point
P256 = 2
SCHEMES = {RSA_VERSION: "RSA-3072-PSS", ECDSA_VERSION: "ECDSA"}

assert RSA_BLOCK.size == ECDSA_BLOCK.size == BLOCK


class SigningKeyError(ValueError):
    """A key file that is not a Secure Boot V2 signing key this project can use."""


@dataclass
class SignatureBlock:
    """One block of the sector. `signs_image`: its digest is the image's SHA-256;
    `signature_ok`: its signature verifies with the key the block carries (None: not
    checked, the block is broken or of an unknown kind)."""

    index: int
    version: int
    crc_stored: int
    crc_computed: int
    key_digest: bytes | None = None
    signs_image: bool = False
    signature_ok: bool | None = None

    @property
    def crc_ok(self) -> bool:
        return self.crc_stored == self.crc_computed

    def lines(self) -> list[str]:
        scheme = SCHEMES.get(self.version, "unknown scheme")
        crc = "ok" if self.crc_ok else f"BAD (0x{self.crc_stored:08x} != 0x{self.crc_computed:08x})"
        parts = [f"block {self.index}: {scheme} (version {self.version})", f"CRC {crc}"]
        if self.crc_ok and self.version in SCHEMES:
            parts.append("signs this image" if self.signs_image else "digest is NOT this image's")
            if self.signature_ok is not None:
                parts.append("signature ok" if self.signature_ok else "signature does NOT verify")
        out = [", ".join(parts)]
        if self.key_digest is not None:
            out.append(f"  key digest {self.key_digest.hex()}")
        return out


@dataclass
class SignatureSector:
    """What follows an app image: `offset` of the sector, `present` bytes of it there are
    (4096 unless cut short; 0 when the image is only padded), its blocks, and `extra`
    bytes after it."""

    offset: int
    present: int
    blocks: list[SignatureBlock] = field(default_factory=list)
    first_byte: int | None = None
    extra: int = 0

    def errors(self) -> list[str]:
        """Problems: a sector cut short, broken blocks, blocks that do not sign the image."""
        out = []
        if 0 < self.present < SECTOR:
            out.append(
                f"signature sector at 0x{self.offset:x} cut short: {self.present} of {SECTOR} bytes"
            )
        for b in self.blocks:
            if not b.crc_ok:
                out.append(
                    f"signature block {b.index}: CRC 0x{b.crc_stored:08x} != computed "
                    f"0x{b.crc_computed:08x}"
                )
            elif b.version not in SCHEMES:
                out.append(f"signature block {b.index}: unknown version {b.version}")
            elif not b.signs_image:
                out.append(f"signature block {b.index}: its digest is not the image's SHA-256")
            elif b.signature_ok is False:
                out.append(f"signature block {b.index}: the signature does not verify")
        return out

    def lines(self) -> list[str]:
        where = f"at 0x{self.offset:x}"
        if not self.present:
            return [f"signature sector: none (image padded to 0x{self.offset:x})"]
        if not self.blocks:
            first = "" if self.first_byte is None else f", first byte 0x{self.first_byte:02x}"
            out = [f"signature sector: {where}, no signature block{first}"]
        else:
            out = [f"signature sector: {where}, {len(self.blocks)} block(s)"]
            out += ["  " + line for b in self.blocks for line in b.lines()]
        if self.extra:
            out.append(f"  +{self.extra} bytes after the signature sector")
        return out


def _verify_rsa(block: bytes, digest: bytes) -> bool:
    _m, _v, _d, n, e, _rinv, _mp, sig, _crc = RSA_BLOCK.unpack(block)
    try:
        key = rsa.RSAPublicNumbers(e, int.from_bytes(n, "little")).public_key()
        key.verify(
            sig[::-1],
            digest,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            utils.Prehashed(hashes.SHA256()),
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def _verify_ecdsa(block: bytes, digest: bytes) -> bool | None:
    _m, _v, hash_type, _d, curve, point, sig, _crc = ECDSA_BLOCK.unpack(block)
    if hash_type != 0 or curve != P256:
        return None
    x, y = int.from_bytes(point[:32], "little"), int.from_bytes(point[32:], "little")
    r, s = int.from_bytes(sig[:32], "little"), int.from_bytes(sig[32:], "little")
    try:
        key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        key.verify(
            utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def _block(index: int, block: bytes, digest: bytes) -> SignatureBlock:
    b = SignatureBlock(
        index,
        block[1],
        struct.unpack_from("<I", block, CRC_END)[0],
        zlib.crc32(block[:CRC_END]),
    )
    if b.version == RSA_VERSION:
        b.key_digest = hashlib.sha256(block[RSA_KEY]).digest()
    elif b.version == ECDSA_VERSION and block[36] == P256:
        b.key_digest = hashlib.sha256(block[ECDSA_P256_KEY]).digest()
    if b.crc_ok and b.version in SCHEMES:
        b.signs_image = block[4:36] == digest
        verify = _verify_rsa if b.version == RSA_VERSION else _verify_ecdsa
        b.signature_ok = verify(block, digest)
    return b


def read_sector(data: bytes | memoryview, app_length: int) -> SignatureSector | None:
    """The signature sector after the app image that ends at `app_length`: None when
    nothing follows the image. Blocks are read as espsecure does: the first one that
    does not start with 0xE7 ends them."""
    n = len(data)
    if n <= app_length:
        return None
    offset = -app_length % SECTOR + app_length
    present = max(0, min(n, offset + SECTOR) - offset)
    sector = SignatureSector(offset, present, extra=max(0, n - offset - SECTOR))
    if not present:
        return sector
    sector.first_byte = data[offset]
    digest = hashlib.sha256(data[:offset]).digest()
    for i in range(MAX_BLOCKS):
        start = offset + i * BLOCK
        block = bytes(data[start : start + BLOCK])
        if len(block) < BLOCK or block[0] != MAGIC:
            break
        sector.blocks.append(_block(i, block, digest))
    return sector


def key_digest(pem: bytes, name: str = "key") -> bytes:
    """The digest of a public or private PEM key as a board trusts it, what `espsecure
    digest-sbv2-public-key` writes: the SHA-256 of the key as a signature block stores it,
    for RSA-3072 n, e, rinv, m' (version 2 blocks), for ECDSA P-256 the curve id and the
    point (version 3 blocks)."""
    try:
        if b"PRIVATE KEY-----" in pem:
            key = serialization.load_pem_private_key(pem, password=None).public_key()
        else:
            key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise SigningKeyError(f"{name} is not a PEM key espsecure reads ({e})") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise SigningKeyError(
                f"{name} is an ECDSA key on {key.curve.name}: the board checks RSA-3072 and "
                "ECDSA P-256 (secp256r1) signatures"
            )
        p = key.public_numbers()
        point = p.x.to_bytes(32, "little") + p.y.to_bytes(32, "little")
        return hashlib.sha256(bytes([P256]) + point).digest()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SigningKeyError(
            f"{name} is a {type(key).__name__}: the board checks RSA-3072 and ECDSA P-256 "
            "signatures"
        )
    if key.key_size != 3072:
        raise SigningKeyError(f"{name} is an RSA-{key.key_size} key: Secure Boot V2 uses RSA-3072")
    nums = key.public_numbers()
    n = nums.n
    rinv = (1 << 6144) % n
    mprime = -pow(n, -1, 1 << 32) & 0xFFFFFFFF
    stored = struct.pack(
        "<384sI384sI",
        n.to_bytes(384, "little"),
        nums.e,
        rinv.to_bytes(384, "little"),
        mprime,
    )
    return hashlib.sha256(stored).digest()
