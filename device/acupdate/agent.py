# acupdate.agent: the update-server client, AutoConnectUpdate's counterpart.
# Status values, callbacks and error texts follow AutoConnectUpdate and the Arduino
# HTTPUpdate client (see the wire protocol); the image is checked before a byte is
# written and streamed into the inactive OTA slot by acupdate.ota.
from micropython import const

RESET = const(0)
IDLE = const(1)
START = const(2)
PROGRESS = const(3)
SUCCESS = const(4)
NOAVAIL = const(5)
FAIL = const(6)
NAMES = ("RESET", "IDLE", "START", "PROGRESS", "SUCCESS", "NOAVAIL", "FAIL")
_HTTP_ERRORS = {401: "Unauthorized (401)", 403: "Forbidden (403)", 404: "File Not Found (404)"}
_BLINK = const(8)  # LED toggles every 8 blocks (32 KiB)


def _mac(b):
    return ":".join("%02X" % x for x in b)


class Updater:
    """Ask an update server for images and install one into the inactive OTA slot.

    on_start(), on_progress(amount, size), on_end(md5) and on_error(text) are optional
    callbacks; `status` is one of RESET..FAIL and `error` the last failure's text."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.status = IDLE
        self.error = ""
        self.buf = bytearray(4096)
        self.on_start = self.on_progress = self.on_end = self.on_error = None

    def catalog(self):
        """The server's bin entries: [(name, date, time, size)]."""
        from . import catalog

        return catalog.fetch(self.cfg)

    def headers(self, target):
        """The ESP32 HTTPUpdate request headers, with this board's real values."""
        import esp
        import network

        from . import slots

        cid, size, md5, desc = slots.image_facts(slots.running(), self.buf)
        h = [
            ("User-Agent", "ESP32-http-Update"),
            ("Cache-Control", "no-cache"),
            ("x-ESP32-STA-MAC", _mac(network.WLAN(network.STA_IF).config("mac"))),
            ("x-ESP32-AP-MAC", _mac(network.WLAN(network.AP_IF).config("mac"))),
            ("x-ESP32-free-space", target.info()[3]),
            ("x-ESP32-sketch-size", size),
            ("x-ESP32-sketch-md5", md5),
            ("x-ESP32-chip-size", esp.flash_size()),
            ("x-ESP32-sdk-version", desc[4] or "unknown"),
            ("x-ESP32-mode", "sketch"),
        ]
        if desc[0]:
            h.append(("x-ESP32-version", desc[0]))
        return cid, h

    def update(self, name):
        """Download image `name` and make it boot next. Returns SUCCESS, NOAVAIL or FAIL."""
        self.status = START
        self.error = ""
        if self.on_start:
            self.on_start()
        try:
            md5 = self._update(name)
        except (OSError, ValueError) as e:
            return self._fail(e)
        if md5 is None:
            self.status = NOAVAIL
            return NOAVAIL
        self.status = SUCCESS
        if self.on_end:
            self.on_end(md5)
        return SUCCESS

    def _fail(self, e):
        self.status = FAIL
        self.error = str(e.args[0]) if e.args else type(e).__name__
        if isinstance(self.error, int):
            self.error = "error %d" % self.error
        if self.on_error:
            self.on_error(self.error)
        return FAIL

    def _update(self, name):
        from . import http, imagecheck, ota, slots

        cfg = self.cfg
        target = slots.target()
        cid, hdrs = self.headers(target)
        r = http.request(cfg.host, cfg.port, cfg.image_target(name), hdrs, cfg.timeout)
        try:
            if r.status == 304:
                return None
            if r.status != 200:
                raise OSError(_HTTP_ERRORS.get(r.status) or "Wrong HTTP Code (%d)" % r.status)
            size = r.length
            if size <= 0:
                raise OSError("Server Did Not Report Size")
            md5 = r.headers.get("x-md5", "")
            if len(md5) != 32 or not _is_hex(md5):
                raise ValueError("Bad x-MD5 header %r: expected 32 hex digits" % md5[:40])
            space = target.info()[3]
            w = ota.Writer(target, size, self.buf)
            first = w.room()
            n = r.readinto(first)
            imagecheck.check(first[:n], cid, size, space)
            self._pump(r, w, n)
            return w.finish(md5)
        finally:
            r.close()

    def _pump(self, r, w, n):
        led = self._led()
        size = w.size
        blk = 0
        while True:
            w.commit(n)
            self.status = PROGRESS
            if self.on_progress:
                self.on_progress(w.done, size)
            if w.done >= size:
                break
            if led and w.fill == 0:
                blk += 1
                if blk % _BLINK == 0:
                    led.value(not led.value())
            n = r.readinto(w.room())
            if not n:
                break
        if led:
            led.value(not self.cfg.led_on)

    def _led(self):
        if self.cfg.led is None:
            return None
        import machine

        return machine.Pin(self.cfg.led, machine.Pin.OUT, value=self.cfg.led_on)


def _is_hex(s):
    for c in s:
        if c not in "0123456789abcdefABCDEF":
            return False
    return True
