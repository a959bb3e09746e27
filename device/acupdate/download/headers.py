# acupdate.download.headers: the ESP32 HTTPUpdate client's request headers with this board's real
# values (Updater.headers), loaded only while they are made (acupdate.config.cold).
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


def facts(up):
    """(chip id, length, MD5 hex, ESP-IDF version, app version) of the running image,
    read through up.buf."""
    import esp32

    from ..ota import image as imagecheck

    run = esp32.Partition(esp32.Partition.RUNNING)  # type: ignore[arg-type]
    cid, size, md5, desc = imagecheck.facts(run, up.buf)
    return cid, size, md5, desc[4] or "unknown", desc[0]


def make(up, target, f=None):
    """Updater.headers(): (the running image's chip id, [(name, value)]); `f`: facts()'s
    result when known."""
    import esp
    import network

    cid, size, md5, idf, version = f or facts(up)
    values = (
        "ESP32-http-Update",
        "no-cache",
        _MAC % tuple(network.WLAN(network.STA_IF).config("mac")),
        _MAC % tuple(network.WLAN(network.AP_IF).config("mac")),
        target.info()[3],
        size,
        md5,
        esp.flash_size(),
        idf,
        "sketch",
        version,
    )
    h = list(zip(_NAMES, values))  # noqa: B905 (MicroPython's zip has no strict=)
    if not version:
        h.pop()
    return cid, h


def raw(target, f):
    """The request's header lines (bytes) for facts `f`: what a download sends."""
    return b"".join(b"%s: %s\r\n" % h for h in make(None, target, f)[1])
