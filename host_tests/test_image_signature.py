"""tools.image and signatures: `inspect` reports a Secure Boot V2 signature sector as
espsecure made it (blocks, versions, key digests, CRCs, whether each block signs the
image), and key_digest() computes what `espsecure digest-sbv2-public-key` writes."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from signing import BLOCK, CRC, DIGEST, SIG, espsecure, fix_crc, flip, sector, sign

from tools.image import build_app, inspect
from tools.image.__main__ import main
from tools.image.signature import SigningKeyError, key_digest


@pytest.fixture(scope="module")
def signed(tmp_path_factory, sign_keys):
    """(unsigned app, signed by A, signed by A then B) as bytes, and their folder."""
    d = tmp_path_factory.mktemp("inspect")
    (d / "app.bin").write_bytes(build_app(version="3.0.0", size=30_000, seed=4))
    a = sign(d / "app.bin", sign_keys["A"].pem, d / "a.bin")
    ab = sign(d / "a.bin", sign_keys["B"].pem, d / "ab.bin", append=True)
    return (d / "app.bin").read_bytes(), a, ab, d


def test_inspect_reports_the_blocks_as_espsecure_reads_them(signed, sign_keys):
    app, _a, ab, d = signed
    info = inspect(ab)
    assert info.valid, info.errors
    sec = info.signature
    assert sec is not None and sec.offset == len(ab) - 4096 and sec.present == 4096
    assert [(b.index, b.version, b.crc_ok, b.signs_image, b.signature_ok) for b in sec.blocks] == [
        (0, 2, True, True, True),
        (1, 2, True, True, True),
    ]
    assert [b.key_digest for b in sec.blocks] == [sign_keys["A"].digest, sign_keys["B"].digest]
    # espsecure signature-info-v2 prints the same key digests
    out = espsecure("signature-info-v2", d / "ab.bin")
    printed = [
        bytes.fromhex(h.replace(" ", "")) for h in re.findall(r"block \d: ([0-9a-f ]+)", out)
    ]
    assert printed == [b.key_digest for b in sec.blocks]
    text = info.summary()
    assert f"signature sector: at 0x{sec.offset:x}, 2 block(s)" in text
    assert "block 1: RSA-3072-PSS (version 2), CRC ok, signs this image, signature ok" in text
    assert f"key digest {sign_keys['B'].hex}" in text
    assert f"image length: {len(app)} bytes (+{len(ab) - len(app)} bytes after it)" in text


def test_inspect_unsigned_and_padded(signed):
    app, a, _ab, _d = signed
    info = inspect(app)
    assert info.valid and info.signature is None
    assert "signature sector: none (unsigned)" in info.summary()
    padded = a[: sector(a)]
    info = inspect(padded)
    assert info.valid and info.signature is not None and info.signature.present == 0
    assert f"signature sector: none (image padded to 0x{len(padded):x})" in info.summary()


def test_inspect_finds_what_is_wrong_with_a_sector(signed):
    _app, a, ab, _d = signed
    s = sector(a)
    cases = {
        "CRC": (flip(a, s + CRC), r"^signature block 0: CRC 0x[0-9a-f]{8} != computed 0x"),
        "digest": (
            fix_crc(flip(a, s + DIGEST)),
            r"^signature block 0: its digest is not the image's SHA-256$",
        ),
        "signature": (
            fix_crc(flip(a, s + SIG + 9)),
            r"^signature block 0: the signature does not verify$",
        ),
        "image": (flip(ab, s - 1), r"^signature block 0: its digest is not the image's"),
        "version": (fix_crc(flip(a, s + 1, 2)), r"^signature block 0: unknown version 6$"),
        "cut": (a[:-1], r"^signature sector at 0x[0-9a-f]+ cut short: 4095 of 4096 bytes$"),
        "block 1": (flip(ab, s + BLOCK + CRC), r"^signature block 1: CRC"),
    }
    for name, (data, want) in cases.items():
        info = inspect(data)
        assert not info.valid, name
        assert any(re.search(want, e) for e in info.errors), f"{name}: {info.errors}"
    # a sector without a block (first byte not 0xE7) is reported, not an error
    info = inspect(a[:s] + b"\xa5" * 4096)
    assert info.valid
    assert "no signature block, first byte 0xa5" in info.summary()


def test_inspect_reads_an_ecdsa_block(tmp_path, signed, ec_keys):
    _app, _a, _ab, d = signed
    sign(d / "app.bin", ec_keys["P256"].pem, tmp_path / "ec.bin")
    info = inspect((tmp_path / "ec.bin").read_bytes())
    assert info.valid, info.errors
    (b,) = info.signature.blocks  # type: ignore[union-attr]
    assert (b.version, b.crc_ok, b.signs_image, b.signature_ok) == (3, True, True, True)
    assert b.key_digest == ec_keys["P256"].digest
    assert "block 0: ECDSA (version 3)" in info.summary()


def test_key_digest_equals_espsecures(sign_keys, ec_keys):
    for k in [*sign_keys.values(), ec_keys["P256"]]:
        assert key_digest(k.pem.read_bytes()) == k.digest
        assert key_digest(k.public.read_bytes()) == k.digest


def test_key_digest_refuses_other_keys(ec_keys):
    for curve, name in (("P192", "secp192r1"), ("P384", "secp384r1")):
        with pytest.raises(
            SigningKeyError,
            match=rf"^k is an ECDSA key on {name}: the board checks RSA-3072 and ECDSA P-256",
        ):
            key_digest(ec_keys[curve].public.read_bytes(), "k")
    small = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = small.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(
        SigningKeyError, match=r"^k is an RSA-2048 key: Secure Boot V2 uses RSA-3072$"
    ):
        key_digest(pem, "k")
    with pytest.raises(SigningKeyError, match=r"^k is not a PEM key espsecure reads"):
        key_digest(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", "k")


def test_cli_inspect_signed(signed, capsys):
    _app, a, _ab, d = signed
    bad = d / "bad.bin"
    bad.write_bytes(flip(a, sector(a) + SIG))
    capsys.readouterr()
    assert main(["inspect", str(d / "ab.bin")]) == 0
    out = capsys.readouterr().out
    assert out.count("RSA-3072-PSS (version 2), CRC ok, signs this image, signature ok") == 2
    assert main(["inspect", str(bad)]) == 1
    assert "error: signature block 0: CRC" in capsys.readouterr().out
