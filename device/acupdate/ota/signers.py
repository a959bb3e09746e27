# acupdate.ota.signers: which trusted key signed the image in each OTA slot, for
# acupdate.repl.status(): the board's keys (the settings' "signing" section), then
# each image's signature (acupdate.ota.signature, acupdate.ota.sigverify), read from flash. An
# image is signed when a signature block follows its app.
import binascii

from micropython import const

_SECTOR = const(4096)


def table(rows):
    """[(slot label, words)] for slots.table()'s rows when the settings name trusted keys,
    else []. Each image is read and hashed whole."""
    import esp32

    from . import signed

    d = signed.section()
    if d is None:
        return []
    try:
        keys = signed.keys(d)
    except ValueError as e:
        return [("-", "the settings' keys are not usable: %s" % e.args[0])]
    buf = bytearray(_SECTOR)
    out = []
    for row in rows:
        label = row[0]
        if row[1] in ("incomplete", "empty"):  # no whole image (acupdate.ota.slots.table)
            out.append((label, "-"))
            continue
        part = esp32.Partition(label)
        read = _reader(part)
        try:
            # signed when a signature block follows the app
            room = part.info()[3]
            from .signature import app_length

            size = app_length(read, room, buf)
            s = (size + _SECTOR - 1) & ~(_SECTOR - 1)
            if s + _SECTOR <= room:
                read(s, memoryview(buf)[:1])
                if buf[0] == 0xE7:
                    size = s + _SECTOR
            k = check(read, size, keys[0], False, buf)
            if k is None:
                words = "unsigned"
            else:
                key = binascii.hexlify(keys[0][k]).decode()
                words = "signed by trusted key %d (%s...)" % (k, key[:16])
        except ValueError as e:
            words = "NOT accepted: %s" % e.args[0]
        out.append((label, words))
    return out


def _reader(part):
    def read(at, mv):
        part.readblocks(0, mv, at)

    return read


def check(read, size, trusted, required, buf):
    """The signature check of the `size`-byte image that read(offset, mv) reads, both steps
    in one (acupdate.ota.signature.find, acupdate.ota.sigverify.first): the index in
    `trusted` of the key that signed it; None for an unsigned image when not `required`;
    else ValueError, saying why."""
    from . import signature, sigverify

    found = signature.find(
        read, size, signature.app_length(read, size, buf), trusted, required, buf
    )
    return found and sigverify.first([read, found[0], found[1], found[2]], buf)
