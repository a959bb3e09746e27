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


def wifi(cfg):
    """Join the access point in cfg {"ssid", "key"}; True when connected."""
    import network

    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    if sta.isconnected():
        return True
    sta.connect(cfg["ssid"], cfg.get("key", ""))
    t0 = time.ticks_ms()
    while not sta.isconnected():
        if time.ticks_diff(time.ticks_ms(), t0) > cfg.get("wait_ms", WIFI_WAIT_MS):
            _log("Wi-Fi %r not joined (status %d)" % (cfg["ssid"], sta.status()))
            return False
        time.sleep_ms(100)
    _log("Wi-Fi %r joined, ip %s" % (cfg["ssid"], sta.ifconfig()[0]))
    return True


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
    from . import repl
    from .ota import slots

    settings = repl.settings()
    net_ok = wifi(settings["wifi"]) if "wifi" in settings else False
    if slots.running_state() != "PENDING_VERIFY":
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
    import machine

    time.sleep_ms(200)
    machine.reset()


def check():
    """The start-up update check, when /acupdate.json has "startup": {"image": ...}."""
    from . import repl

    st = repl.settings().get("startup", {})
    name = st.get("image")
    if not st.get("update") or not name:
        return None
    try:
        return repl.update(name, timeout=st.get("timeout", 3))
    except (OSError, ValueError) as e:
        _log("start-up update check skipped: %s" % e)
        return None
