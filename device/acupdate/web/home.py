# acupdate.web.home: the home page (running slot and version). Its own module: GET / loads
# neither the upload form's script nor the progress bar, nor acupdate.ota.image (its code
# would be 3 KiB of the heap a page has, for the app descriptor's version).
from . import core, frame


async def home(src, w):
    import esp32

    run = esp32.Partition(esp32.Partition.RUNNING)
    buf = bytearray(80)
    run.readblocks(0, buf)
    esc = frame.esc
    await core.send(
        w,
        frame.OK,
        frame.page(
            "Firmware update",
            b"<p>Running: <b>",
            esc(run.info()[4]),
            b"</b>, version <b>",
            esc(version(buf)),
            b'</b></p><ul><li><a href="/_ac/update">UPDATE</a>: install an image from the '
            b'update server</li><li><a href="/update">Upload</a>: send a .bin file from this '
            b"computer</li></ul>",
        ),
    )


def version(b):
    """The version in the app descriptor of an image's first 80 bytes `b` (as
    acupdate.ota.image.AppDesc reads it: esp_app_desc_t at 32, magic 0xABCD5432, version at
    48, 32 bytes, NUL-padded)."""
    if b[32:36] != b"\x32\x54\xcd\xab":
        return "(no app descriptor)"
    v = bytes(b[48:80]).split(b"\0")[0]
    try:
        return v.decode() or "(blank)"
    except UnicodeError:
        return repr(v)
