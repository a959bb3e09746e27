# acupdate.download.headers: the ESP32 HTTPUpdate client's request headers, with this
# board's real values (Host and Connection are the HTTP client's).
_MAC = b"%02X:%02X:%02X:%02X:%02X:%02X"
_LINES = (
    b"User-Agent: ESP32-http-Update\r\n"
    b"Cache-Control: no-cache\r\n"
    b"x-ESP32-STA-MAC: %s\r\n"
    b"x-ESP32-AP-MAC: %s\r\n"
    b"x-ESP32-free-space: %d\r\n"
    b"x-ESP32-sketch-size: %d\r\n"
    b"x-ESP32-sketch-md5: %s\r\n"
    b"x-ESP32-chip-size: %d\r\n"
    b"x-ESP32-sdk-version: %s\r\n"
    b"x-ESP32-mode: sketch\r\n"
)
_VERSION = b"x-ESP32-version: %s\r\n"  # left out when the running image has no version


def for_download(part, buf):
    """(the request's header lines, the running image's chip id) for a download into
    Partition `part`; the running image is read through the 4096-byte `buf`."""
    import esp32

    from ..ota import image

    running = esp32.Partition(esp32.Partition.RUNNING)  # type: ignore[arg-type]
    facts = image.facts(running, buf)
    return lines(part, facts), facts.chip


def lines(part, facts):
    """The header lines (bytes) of a download into Partition `part`, from the running
    image's acupdate.ota.image.ImageFacts `facts`."""
    import esp
    import network

    out = _LINES % (
        _MAC % tuple(network.WLAN(network.STA_IF).config("mac")),
        _MAC % tuple(network.WLAN(network.AP_IF).config("mac")),
        part.info()[3],
        facts.size,
        facts.md5,
        esp.flash_size(),
        facts.desc.idf or "unknown",
    )
    if facts.desc.version:
        out += _VERSION % facts.desc.version
    return out
