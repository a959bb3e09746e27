# acupdate.agent: the update-server client, AutoConnectUpdate's counterpart.
# Status values, callbacks and error texts follow AutoConnectUpdate and the Arduino
# HTTPUpdate client (see the wire protocol); the image is checked before a byte is
# written and streamed into the inactive OTA slot by acupdate.ota.
# Memory: the Updater's one 4096-byte buffer serves every phase (reply heads in its last
# 1026 bytes, the catalog scan in its first 1024, the running image's MD5, the image
# blocks). Each phase imports what it needs and unloads it when it ends (the catalog;
# slots once the target is known, imagecheck after the first block, ota after the update),
# unless it was loaded before: catalog() and update() leave the module set as they found it.
from micropython import const

from . import http, loaded, unload

RESET = const(0)
IDLE = const(1)
START = const(2)
PROGRESS = const(3)
SUCCESS = const(4)
NOAVAIL = const(5)
FAIL = const(6)
NAMES = ("RESET", "IDLE", "START", "PROGRESS", "SUCCESS", "NOAVAIL", "FAIL")
_HTTP_ERRORS = {401: "Unauthorized (401)", 403: "Forbidden (403)", 404: "File Not Found (404)"}
_BLOCK = const(4096)
_HEAD = const(3070)  # reply heads go to buf[_HEAD:], http.LINE_MAX + 2 bytes
_BLINK = const(8)  # LED toggles every 8 blocks (32 KiB)
# The ESP32 HTTPUpdate client's request headers (Host and Connection come from http).
_NAMES = (
    "User-Agent",
    "Cache-Control",
    "x-ESP32-STA-MAC",
    "x-ESP32-AP-MAC",
    "x-ESP32-free-space",
    "x-ESP32-sketch-size",
    "x-ESP32-sketch-md5",
    "x-ESP32-chip-size",
    "x-ESP32-sdk-version",
    "x-ESP32-mode",
    "x-ESP32-version",  # left out when the running image has no version
)
_MAC = "%02X:%02X:%02X:%02X:%02X:%02X"


class Updater:
    """Ask an update server for images and install one into the inactive OTA slot.

    on_start(), on_progress(amount, size), on_end(md5) and on_error(text) are optional
    callbacks; `status` is one of RESET..FAIL and `error` the last failure's text."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.status = IDLE
        self.error = ""
        self.buf = bytearray(_BLOCK)
        self.on_start = self.on_progress = self.on_end = self.on_error = None

    def catalog(self):
        """The server's bin entries: [(name, date, time, size)]."""
        before = loaded()
        from . import catalog

        mv = memoryview(self.buf)
        try:
            return catalog.fetch(self.cfg, mv[: catalog.BUF], mv[_HEAD:])
        finally:
            unload(before)

    def headers(self, target):
        """(the running image's chip id, the ESP32 HTTPUpdate request headers: (name,
        value) pairs with this board's real values)."""
        import esp
        import esp32
        import network

        from . import imagecheck

        run = esp32.Partition(esp32.Partition.RUNNING)  # type: ignore[arg-type]
        cid, size, md5, desc = imagecheck.facts(run, self.buf)
        values = (
            "ESP32-http-Update",
            "no-cache",
            _MAC % tuple(network.WLAN(network.STA_IF).config("mac")),
            _MAC % tuple(network.WLAN(network.AP_IF).config("mac")),
            target.info()[3],
            size,
            md5,
            esp.flash_size(),
            desc[4] or "unknown",
            "sketch",
            desc[0],
        )
        h = list(zip(_NAMES, values))  # noqa: B905 (MicroPython's zip has no strict=)
        if not desc[0]:
            h.pop()
        return cid, h

    def update(self, name):
        """Download image `name` and make it boot next. Returns SUCCESS, NOAVAIL or FAIL."""
        self.status = START
        self.error = ""
        if self.on_start:
            self.on_start()
        before = loaded()
        try:
            md5 = self._update(name, before)
        except (OSError, ValueError) as e:
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

    def _update(self, name, before):
        cfg = self.cfg
        target = self._target()
        unload(before)  # slots is done
        cid, hdrs = self.headers(target)
        mv = memoryview(self.buf)
        r = http.request(
            cfg.host, cfg.port, cfg.image_target(name), hdrs, cfg.timeout, buf=mv[_HEAD:]
        )
        hdrs = None
        try:
            if r.status == 304:
                return None
            if r.status != 200:
                raise OSError(_HTTP_ERRORS.get(r.status) or "Wrong HTTP Code (%d)" % r.status)
            size = r.length
            if size <= 0:
                raise OSError("Server Did Not Report Size")
            md5 = r.headers.get("x-md5", "")
            if len(md5) != 32 or md5.strip("0123456789abcdefABCDEF"):
                raise ValueError("Bad x-MD5 header %r: expected 32 hex digits" % md5[:40])
            n = r.readinto(mv if size >= _BLOCK else mv[:size])
            self._check(mv[:n], cid, size, target.info()[3])
            unload(before)  # imagecheck is done
            from . import ota

            w = ota.Writer(target, size, self.buf)  # block 0's first n bytes are in buf
            self._pump(r, w, n)
            return w.finish(md5)
        finally:
            r.close()

    # slots and imagecheck are used only from these (and headers), so that their functions
    # stay out of _update's frame (a stale slot there would keep their code alive).
    def _target(self):
        from . import slots

        return slots.target()

    def _check(self, first, cid, size, space):
        from . import imagecheck

        imagecheck.check(first, cid, size, space)

    def _pump(self, r, w, n):
        # The transfer: nothing is allocated per block (room() is the whole buffer's view).
        cfg = self.cfg
        led = None
        if cfg.led is not None:
            import machine

            led = machine.Pin(cfg.led, machine.Pin.OUT, value=cfg.led_on)
        while True:
            w.commit(n)
            self.status = PROGRESS
            if self.on_progress:
                self.on_progress(w.done, w.size)
            if w.done >= w.size:
                break
            if led and not w.fill and not w.blk % _BLINK:
                led.value(not led.value())
            n = r.readinto(w.room())
            if not n:
                break
        if led:
            led.value(not cfg.led_on)
