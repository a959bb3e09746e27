"""Signed images for the tests, made by Espressif's own `espsecure` (the pinned esptool's).

- make_key(): a signing key from `espsecure generate-signing-key --version 2`, made at
  test time (conftest's session fixtures: `sign_keys`, RSA-3072 keys A, B, C; `ec_keys`,
  ECDSA keys on P-256, P-192 and P-384), never committed.
- sign(): `espsecure sign-data --version 2` (with --append-signatures to add a block).
- espsecure(): the espsecure command line, run in this process (its click CLI, as the
  `espsecure` script runs it).
- espsecure_accepts(): `espsecure verify-signature --version 2`'s verdict.
- digest(): `espsecure digest-sbv2-public-key`, the 32 bytes a board trusts.
- flip() and fix_crc(): tamper with an image, one bit at a time.

Layout facts: /work/shared/reference/signing.md.
"""

from __future__ import annotations

import contextlib
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import espsecure as espsecure_cli
import esptool

SECTOR = 4096
BLOCK = 1216
# Offsets inside a signature block (version 2, RSA-3072).
DIGEST, N, E, SIG, CRC = 4, 36, 420, 812, 1196
# ... and in a version 3 block (ECDSA P-256): curve id, the point (x, y), then (r, s).
CURVE, POINT, R, S = 36, 37, 101, 133


def espsecure(*args: str | Path) -> str:
    """Run the espsecure command line (its own click CLI, in this process: no interpreter
    start per call) with these arguments; its output. esptool.FatalError when it refuses."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        espsecure_cli.main([str(a) for a in args])
    return out.getvalue()


@dataclass(frozen=True)
class Key:
    pem: Path  # the private key
    public: Path  # its public key, PEM
    digest: bytes  # espsecure digest-sbv2-public-key

    @property
    def hex(self) -> str:
        return self.digest.hex()


def make_key(folder: Path, name: str, scheme: str = "rsa3072") -> Key:
    """A signing key (rsa3072, ecdsa256, ...: espsecure's --scheme), its public PEM, its
    digest."""
    pem, pub, dig = folder / f"{name}.pem", folder / f"{name}.pub.pem", folder / f"{name}.dig"
    espsecure("generate-signing-key", "--version", "2", "--scheme", scheme, pem)
    espsecure("extract-public-key", "--version", "2", "--keyfile", pem, pub)
    espsecure("digest-sbv2-public-key", "--keyfile", pem, "--output", dig)
    return Key(pem, pub, dig.read_bytes())


def sign(src: Path, key: Path, out: Path, append: bool = False) -> bytes:
    """`espsecure sign-data --version 2` of src with the private key file `key` into out;
    the signed bytes."""
    extra = ["--append-signatures"] if append else []
    espsecure("sign-data", "--version", "2", *extra, "--keyfile", key, "--output", out, src)
    return out.read_bytes()


def espsecure_accepts(image: Path, key: Key) -> bool:
    """`espsecure verify-signature --version 2` with `key` (its public PEM: espsecure takes
    either; loading the private one costs a key check each time): True when it verifies."""
    try:
        espsecure("verify-signature", "--version", "2", "--keyfile", key.public, image)
    except esptool.FatalError:
        return False
    return True


def sector(signed: bytes) -> int:
    """Where the signature sector of a well-formed signed image starts."""
    return len(signed) - SECTOR


def flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    """data with one bit flipped at `offset` (negative: from the end)."""
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


def fix_crc(data: bytes, block: int = 0) -> bytes:
    """data with signature block `block`'s CRC-32 made right again for what it holds."""
    out = bytearray(data)
    at = sector(data) + block * BLOCK
    struct.pack_into("<I", out, at + CRC, zlib.crc32(out[at : at + CRC]))
    return bytes(out)
