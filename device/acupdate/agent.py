# acupdate.agent: the update-server client, AutoConnectUpdate's counterpart.
# Status values, callbacks and error texts follow AutoConnectUpdate and the Arduino
# HTTPUpdate client (see the wire protocol); the image is checked before a byte is
# written and streamed into the inactive OTA slot by acupdate.ota. Requests (https,
# authentication, redirects, deadline) and the catalog query are acupdate.download.request; the
# request headers acupdate.download.headers; a download's start, with the reply's and the first
# block's checks, acupdate.download.start; the rest, with its resume, acupdate.download.transfer.
# Memory: the Updater's one 4096-byte buffer serves every phase (reply heads in its last
# 1026 bytes, the catalog scan in its first 1024, the running image's MD5, the image
# blocks). http stays loaded with the agent (loading it for each phase would leave the
# heap in pieces); each phase imports what else it needs and unloads it when it ends
# (fetch and the catalog; slots once the target is known; reqhdrs and imagecheck after the
# headers; first, fetch, and imagecheck again, after the first block; transfer and ota
# after the update), unless it was loaded before: catalog() and update() leave the
# module set as they found it.
from micropython import const

from . import loaded, unload
from .config import cold
from .http import response  # noqa: F401 (kept loaded, see above)

RESET = const(0)
IDLE = const(1)
START = const(2)
PROGRESS = const(3)
SUCCESS = const(4)
NOAVAIL = const(5)
FAIL = const(6)
NAMES = ("RESET", "IDLE", "START", "PROGRESS", "SUCCESS", "NOAVAIL", "FAIL")
_BLOCK = const(4096)


class Updater:
    """Ask an update server for images and install one into the inactive OTA slot.

    on_start(), on_progress(amount, size), on_end(md5) and on_error(text) are optional
    callbacks; `status` is one of RESET..FAIL and `error` the last failure's text. `buf`:
    the 4096-byte bytearray every phase works through (default: a new one)."""

    def __init__(self, cfg, buf=None):
        self.cfg = cfg
        self.status = IDLE
        self.error = ""
        self.buf = buf or bytearray(_BLOCK)
        self.listed = None  # the last catalog(), until the next update()
        self.on_start = self.on_progress = self.on_end = self.on_error = None

    def catalog(self):
        """The server's bin entries: [(name, date, time, size)], an entry's sha256 a fifth
        item when it has one. update(name) takes the size listed here (for a server that
        sends the image without a Content-Length) and the sha256 (checked too)."""
        self.listed = None
        self.listed = self.cfg.listing(self.buf)
        return self.listed

    def headers(self, target):
        """(the running image's chip id, the ESP32 HTTPUpdate request headers: (name,
        value) pairs with this board's real values); `target`: the OTA slot to write."""
        return cold("download.headers", "make", self, target)

    def update(self, name, size=None, sha256=None):
        """Download image `name` and make it boot next. Returns SUCCESS, NOAVAIL or FAIL.

        `size`: the image's size, for a server that sends no Content-Length; `sha256`: its
        SHA-256 in hex, checked too (as is the server's x-SHA256 header). Both default to
        what the last catalog() listed for `name`."""
        self.status = START
        self.error = ""
        if self.on_start:
            self.on_start()
        for e in self.listed or ():
            if e[0] == name:  # the catalog's size and sha256 unless given
                size = e[3] if size is None else size
                sha256 = e[4] if sha256 is None and len(e) > 4 else sha256
                break
        self.listed = e = None  # the catalog's list is not kept during the update
        before = loaded()
        try:
            md5 = self._update(name, before, size, sha256)
        except (OSError, ValueError, MemoryError) as e:
            self.status = FAIL
            self.error = str(e.args[0]) if e.args else type(e).__name__
            if self.on_error:
                self.on_error(self.error)
            return FAIL
        finally:
            unload(before)
        if md5 is None:
            self.status = NOAVAIL
            return NOAVAIL
        self.status = SUCCESS
        if self.on_end:
            self.on_end(md5)
        return SUCCESS

    def _update(self, name, before, size, sha):
        import time

        deadline = time.ticks_add(time.ticks_ms(), int(self.cfg.deadline * 1000))
        target = self._target()
        unload(before)  # slots is done
        f = cold("download.headers", "facts", self)  # the running image's, kept for resumes
        cid = f[0]
        hdrs = cold("download.headers", "raw", target, f)
        a = cold("download.start", "image", self, name, target, cid, hdrs, size, sha, deadline)
        hdrs = None
        if a is None:
            return None
        r = a[0]
        try:
            b = a[1]
            if not b[4]:  # the first block is in: check it before anything is written
                cold(
                    "ota.image", "check", memoryview(self.buf)[: b[3]], cid, b[1], target.info()[3]
                )
            b = None
            from .download import transfer
        except BaseException:
            r.close()
            raise
        return transfer.run(self, a, target, f, size, deadline)

    # slots is used only from here, so that its functions stay out of _update's frame (a
    # stale slot there would keep their code alive).
    def _target(self):
        from .ota import slots

        return slots.target()
