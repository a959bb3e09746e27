# acupdate.startup: what boot.py and main.py do at every start.
#   boot():  join Wi-Fi from /acupdate.json; when the running image is new (pending
#            verification), run the health check and confirm it only if it passes,
#            else reset at once so the bootloader rolls back.
#   check(): optionally ask the update server for the configured image and install it
#            when it differs from the running one (the server answers 304 when equal).
import time

WIFI_WAIT_MS = 10000


def _log(msg):
    print("acupdate:", msg)


def wifi(cfg, wait=True):
    """Join the access point in cfg {"ssid", "key"}; True when connected. wait=False: ask the
    station to join and return at once (a soft reset: mpremote and the REPL must not wait
    for the Wi-Fi). The wait ends as soon as the station reports a wrong key or no such
    access point; the status is printed by its name."""
    import network

    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    if sta.isconnected():
        return True
    sta.connect(cfg["ssid"], cfg.get("key", ""))
    if not wait:
        _log("Wi-Fi %r: joining (not waited for after a soft reset)" % cfg["ssid"])
        return False
    t0 = time.ticks_ms()
    while not sta.isconnected():
        st = sta.status()
        late = time.ticks_diff(time.ticks_ms(), t0) > cfg.get("wait_ms", WIFI_WAIT_MS)
        if late or st in _GIVE_UP:
            _log("Wi-Fi %r not joined (%s, status %d)" % (cfg["ssid"], _stat(network, st), st))
            return False
        time.sleep_ms(100)
    _log("Wi-Fi %r joined, ip %s" % (cfg["ssid"], sta.ifconfig()[0]))
    return True


# The station's failures that waiting does not mend: STAT_NO_AP_FOUND, STAT_WRONG_PASSWORD
# and the ESP32's "no AP found" variants (network's STAT_ values on the ESP32 port).
_GIVE_UP = (201, 202, 210, 211, 212)


def _stat(network, code):
    # The network module's name for a WLAN status code.
    for name in dir(network):
        if name.startswith("STAT_") and getattr(network, name) == code:
            return name
    return "unknown status"


def health(settings, net_ok):
    """'' when the new image is healthy, else why not."""
    h = settings.get("health", {})
    if h.get("network", "wifi" in settings) and not net_ok:
        return "network is not up"
    for name in h.get("imports", _default_imports()):
        try:
            __import__(name)
        except Exception as e:
            return "import %s failed: %r" % (name, e)
    return ""


def _default_imports():
    import os

    for p in ("app.py", "app.mpy", "lib/app.py", "lib/app.mpy"):
        try:
            os.stat("/" + p)
            return ("app",)
        except OSError:
            pass
    return ()


def boot():
    import machine

    from .boardconfig import load
    from .ota import slots

    settings = load()
    pending = slots.running_state() == "PENDING_VERIFY"
    # After a soft reset (Ctrl-D, every mpremote command) the Wi-Fi is not waited for, so
    # that a wrong key never locks the REPL out; a new image's health check still waits.
    soft = machine.reset_cause() == machine.SOFT_RESET
    net_ok = wifi(settings["wifi"], pending or not soft) if "wifi" in settings else False
    if not pending:
        note = slots.rolled_back()
        if note:
            _log(note)
        return
    why = health(settings, net_ok)
    if not why:
        slots.confirm()  # the active entry names the running slot: it is PENDING_VERIFY
        _log("new image confirmed after its health check")
        return
    _log("health check failed: %s; resetting to roll back to the previous image" % why)
    time.sleep_ms(200)
    machine.reset()


def check():
    """The start-up update check, when /acupdate.json has "startup": {"image": ...}."""
    from .boardconfig import load

    st = load().get("startup", {})
    name = st.get("image")
    if not st.get("update") or not name:
        return None
    from . import repl

    try:
        return repl.update(name, timeout=st.get("timeout", 3))
    except (OSError, ValueError) as e:
        _log("start-up update check skipped: %s" % e)
        return None
