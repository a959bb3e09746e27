# acupdate.agent: the update-server client, AutoConnectUpdate's counterpart (Updater).
# Its status values, callbacks and error texts follow AutoConnectUpdate and the Arduino
# HTTPUpdate client (see the wire protocol). The catalog is read as it arrives
# (acupdate.download.catalog); an image is checked before a byte is written and streamed
# into the inactive OTA slot (acupdate.download, acupdate.ota.writer). Each step runs in a
# Phase: the modules it needs leave the heap when it ends (device/README.md).
from micropython import const

from . import Phase
from .download import Download
from .http.response import Deadline, errname

RESET = const(0)
IDLE = const(1)
START = const(2)
PROGRESS = const(3)
SUCCESS = const(4)
NOAVAIL = const(5)
FAIL = const(6)
NAMES = ("RESET", "IDLE", "START", "PROGRESS", "SUCCESS", "NOAVAIL", "FAIL")
_BLOCK = const(4096)
_ENTRY = const(1024)  # the catalog's largest entry: the first 1 KiB of the block buffer
_HEX = "0123456789abcdefABCDEF"


class Updater:
    """Ask the update server of Config `cfg` for its images and install one into the
    inactive OTA slot.

    on_start(), on_progress(amount, size), on_end(md5) and on_error(text) are optional
    callbacks; `status` is one of RESET..FAIL and `error` the last failure's text. `buf`:
    the 4096-byte bytearray every step works through (default: a new one); `tls`: the
    https server's TLS context (acupdate.http.tls.context(cfg.ca)) when the caller made it
    already, while its heap was emptiest (default: made at the first https request)."""

    def __init__(self, cfg, buf=None, tls=None):
        self.cfg = cfg
        self.tls = tls
        self.status = IDLE
        self.error = ""
        self.buf = buf or bytearray(_BLOCK)
        self.listed = None  # the entries the last catalog() or find() read, for update()
        self.kept = None  # the slot's label when update() found the image there, complete
        self.on_start = self.on_progress = self.on_end = self.on_error = None

    def scan(self, each):
        """Query the catalog and call each(entry) for every bin entry (an
        acupdate.download.catalog.Entry: name, date, time, size, sha256, md5) as it is
        read, keeping none; each() may return True to stop. Returns the number of bin
        entries read. OSError or ValueError when the query fails or the catalog is bad;
        the query has its own deadline (Config's catalog_deadline)."""
        cfg = self.cfg
        deadline = Deadline(cfg.catalog_deadline, "the catalog query's deadline")
        with Phase():
            import acupdate.download.request

            r = acupdate.download.request.get(
                cfg, cfg.catalog_target(), b"", self.buf, deadline, self if self.tls else None
            )
        try:
            if r.status != 200:
                raise OSError(
                    "Update server responds (%d) to the catalog query for %s"
                    % (r.status, cfg.url())
                )
            with Phase():
                import acupdate.download.catalog

                return acupdate.download.catalog.scan(
                    r.readinto, each, memoryview(self.buf)[:_ENTRY]
                )
        finally:
            r.close()

    def catalog(self):
        """The server's bin entries, as a list of Entry; update(name) then takes the size,
        sha256 and md5 listed here. For a catalog too long for the heap, OSError: scan()
        and find() read any length."""
        with Phase():
            import acupdate.download.listing

            return acupdate.download.listing.catalog(self)

    def find(self, name):
        """The catalog's bin Entry named `name`, or None: the catalog is read up to it.
        update(name) then takes its size, sha256 and md5."""
        with Phase():
            import acupdate.download.listing

            return acupdate.download.listing.find(self, name)

    def update(self, name, size=None, sha256=None, md5=None):
        """Download image `name` and make it boot next. Returns SUCCESS, NOAVAIL (the server
        answered 304: the board runs it) or FAIL (`error` says why).

        `size`: the image's size, for a server that sends no Content-Length; `sha256`: its
        SHA-256 in hex, checked too (as is the server's x-SHA256 header); `md5`: its MD5 in
        hex, for a server that sends no x-MD5. They default to what the last catalog() or
        find() listed for `name`; when the reply lacks a size or an x-MD5 that nothing gave,
        the catalog is asked for them."""
        self.status = START
        self.error = ""
        self.kept = None
        if self.on_start:
            self.on_start()
        for e in self.listed or ():
            if e.name == name:  # the catalog's figures, unless given
                size = e.size if size is None else size
                sha256 = e.sha256 if sha256 is None else sha256
                md5 = e.md5 if md5 is None else md5
        self.listed = e = None  # the catalog's list is not kept during the update
        try:
            for h, n in ((sha256, 64), (md5, 32)):
                if h is not None and (not isinstance(h, str) or len(h) != n or h.strip(_HEX)):
                    raise ValueError(
                        "%s must be %d hex digits, got %r" % ("sha256" if n == 64 else "md5", n, h)
                    )
            md5 = self._download(name, size, sha256, md5)
        except (OSError, ValueError, MemoryError) as e:
            self.status = FAIL
            self.error = error_text(e)
            if self.on_error:
                self.on_error(self.error)
            return FAIL
        if md5 is None:
            self.status = NOAVAIL
            return NOAVAIL
        self.status = SUCCESS
        if self.on_end:
            self.on_end(md5)
        return SUCCESS

    def _download(self, name, size, sha256, md5):
        # The image's MD5 once it is written and set to boot, or None for a 304. Each step
        # is a Phase: its modules leave the heap before the next one's come.
        cfg = self.cfg
        deadline = Deadline(cfg.deadline, "the update's deadline")
        dl = Download(name, cfg.image_target(name), deadline, size, sha256, md5)
        dl.tls = self.tls
        r = None
        try:
            with Phase():  # the slot it goes to
                import acupdate.ota.slots

                dl.part = acupdate.ota.slots.target()
            with Phase():  # the request's headers, with the running image's facts
                import acupdate.download.headers

                dl.lines, dl.chip = acupdate.download.headers.for_download(dl.part, self.buf)
            r = self._request(dl)
            lacks = None
            if r.status == 200:
                if dl.md5 is None and "x-md5" not in r.headers:
                    lacks = "No x-MD5 header for %s" % name  # a static host
                elif dl.size is None and r.length < 0:  # chunked, or up to the end
                    lacks = "Server Did Not Report Size for %s (no Content-Length)" % name
            if lacks:
                # The catalog entry's md5 and size (and sha256) stand in, read now; then the
                # image is asked for again.
                r.close()
                r = None
                with Phase():
                    import acupdate.download.listing

                    acupdate.download.listing.fill(self, dl, lacks)
                r = self._request(dl)
            if r.status == 304:  # the board runs this image
                r.close()
                return None
            with Phase():  # the head's checks, the first block's, before anything is written
                import acupdate.download.start

                acupdate.download.start.begin(self, dl, r)
                r = None
            if dl.reply is None:  # the slot held it complete: checked, set to boot
                return dl.md5
            with Phase():  # the slot writer, for the transfer and the checks after it
                import acupdate.ota.writer

                with Phase():  # the rest, written as it comes, resumed when it drops
                    import acupdate.download.transfer

                    acupdate.download.transfer.run(self, dl)
                # The checks before the image may boot (MD5, SHA-256, signature, read-back),
                # with the transfer's code out of the heap; then set_boot.
                return dl.writer.finish(dl.md5)
        finally:
            if r is not None:
                r.close()
            if dl.reply is not None:
                dl.reply.close()

    def _request(self, dl):
        # The reply to the request of Download `dl`, its head read.
        with Phase():
            import acupdate.download.request

            return acupdate.download.request.get(
                self.cfg, dl.target, dl.lines, self.buf, dl.deadline, dl
            )


def error_text(e):
    """The words for exception `e` that ended an update or a query, for a person."""
    a = e.args[0] if e.args else ""
    if isinstance(e, MemoryError):
        return "the heap is too small for this update (%s)" % (a or "MemoryError")
    if isinstance(e, UnicodeError):
        return "a text from the server is not valid UTF-8 (%s)" % (a or "UnicodeError")
    if isinstance(a, int):
        return errname(e)
    return str(a) if a else type(e).__name__
