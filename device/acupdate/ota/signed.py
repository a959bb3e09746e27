# acupdate.ota.signed: the board's signing settings (the "signing" section of its settings
# file: section(), keys()) and the first step of the signature check of an image
# acupdate.ota.writer has just written, before its held header goes to flash (find(): the
# app's length and the signature blocks a trusted key made, acupdate.ota.signature); the
# writer takes the second, acupdate.ota.sigverify.first(), in a phase of its own.
import binascii

from micropython import const

from ..boardconfig import PATH, load

_ROOM = const(4096)  # set aside for acupdate.ota.sigverify (see find)


def find(signing, part, size, head, buf):
    """The first step of the signature check of the `size`-byte image in Partition `part`
    whose first bytes are still held back in `head`: the job of
    acupdate.ota.sigverify.first() ([read, the signature sector's offset, the image's
    SHA-256, [(block, index of its trusted key)]]); None when the image is unsigned and
    that is allowed; else ValueError, saying why. signing: the settings' "signing" section
    (section()); buf: a 4096-byte bytearray to read through."""
    import gc

    from .. import Phase

    trusted, required = keys(signing)
    n = len(head)

    def read(at, mv):
        part.readblocks(0, mv, at)
        if at < n:
            k = min(n - at, len(mv))
            mv[:k] = head[at : at + k]

    # 4 KiB set aside while acupdate.ota.signature comes and goes, free again for the next
    # step's code and numbers (~400 bytes each, several at once): else its code and its
    # garbage cut the heap's holes into pieces too small for them (at a 48 KiB heap, the
    # difference between checking and MemoryError).
    gc.collect()
    try:
        room = bytearray(_ROOM)
    except MemoryError:
        room = None
    with Phase():
        from . import signature

        found = signature.find(
            read, size, signature.app_length(read, size, buf), trusted, required, buf
        )
    del room
    return found and [read, found[0], found[1], found[2]]


def section(path=PATH):
    """The "signing" section of the settings file at `path` (tools.deploy --trust-key,
    --trust-digest, --require-signature write it); None without one, or without the file."""
    return load(path).get("signing")


def keys(d):
    """(trusted key digests, 32 bytes each; required) from a "signing" section."""
    if not isinstance(d, dict) or set(d) - {"trusted", "required"}:
        raise ValueError(
            'settings "signing" must be {"trusted": [...], "required": true|false}, got %r' % (d,)
        )
    hexes = d.get("trusted", [])
    required = d.get("required", False)
    if not isinstance(required, bool):
        raise ValueError(
            'settings "signing": "required" must be true or false, got %r' % (required,)
        )
    if not isinstance(hexes, list) or not hexes:
        raise ValueError(
            'settings "signing": "trusted" must list the key digests (64 hex digits each), '
            "got %r" % (hexes,)
        )
    out = []
    for h in hexes:
        try:
            if not isinstance(h, str) or len(h) != 64:
                raise ValueError
            out.append(binascii.unhexlify(h))
        except ValueError:
            raise ValueError(
                'settings "signing": a trusted key digest is 64 hex digits, got %r' % (h,)
            )
    return out, required
