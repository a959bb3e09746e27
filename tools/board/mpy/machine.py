# Simulated machine module: the ESP32 members the agent and boot.py use.
# Pin changes, the watchdog and resets go to the simulator host.
import os

import _hw

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


def reset():
    # A hard reset: the process ends at once (SIGUSR1), whatever the caller catches;
    # the host runs the bootloader again.
    os.system("kill -USR1 $PPID")
    while True:
        pass


def soft_reset():
    raise SystemExit


def reset_cause():
    return int(os.getenv("ACUPDATE_SIM_RESET_CAUSE") or PWRON_RESET)


def unique_id():
    return _mac(0)


def _mac(add):
    import binascii

    mac = bytearray(binascii.unhexlify(os.getenv("ACUPDATE_SIM_MAC")))
    mac[5] = (mac[5] + add) & 0xFF
    return bytes(mac)


def freq(hz=None):
    if hz is None:
        return 160000000


def idle():
    pass


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self._id = id
        self._v = 0
        if value is not None:
            self.value(value)

    def init(self, mode=-1, pull=-1, value=None):
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0
        _hw.host("PIN %s %d" % (self._id, self._v))

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __repr__(self):
        return "Pin(%s)" % self._id


class WDT:
    # Not fed within timeout ms: the host resets the board (reset_cause WDT_RESET).
    def __init__(self, id=0, timeout=5000):
        _hw.host("WDT %d" % timeout)

    def feed(self):
        _hw.host("FEED")


class Timer:
    # A hardware timer (machine.Timer(0..3) on an ESP32): the callback runs `period` ms after
    # init(), once (ONE_SHOT) or every period (PERIODIC), also while the REPL waits for input,
    # as the board's scheduler runs it there. Here a thread sleeps and calls it.
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=0, **kw):
        self._id = id
        self._gen = 0
        if kw:
            self.init(**kw)

    def init(self, mode=PERIODIC, period=-1, callback=None, freq=-1):
        import _thread

        if freq > 0:
            period = 1000 // freq
        self.deinit()
        self._gen += 1
        _armed.append(self)
        _thread.start_new_thread(self._run, (self._gen, mode, period, callback))

    def _run(self, gen, mode, period, callback):
        import time

        while True:
            time.sleep_ms(period)
            if gen != self._gen:
                return
            if mode == Timer.ONE_SHOT:
                self.deinit()
            if callback:
                callback(self)
            if mode == Timer.ONE_SHOT:
                return

    def deinit(self):
        self._gen += 1
        if self in _armed:
            _armed.remove(self)


_armed = []  # timers that will call back: a board whose script ended still runs them
