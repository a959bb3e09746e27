"""The board settings file, /acupdate.json, built from command-line options.

Its sections are what device/acupdate reads: "wifi" (acupdate.startup.wifi),
"server" (acupdate.config.Config.from_dict), "health" (acupdate.startup.health) and
"startup" (acupdate.startup.check). Every value is checked here, on the host, with
the same rules the board applies, so a bad option fails at deploy time with a message
instead of on the board after the next reset.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import OptionError

MAX_TIMEOUT = 300.0  # seconds; a larger figure is almost always milliseconds by mistake
MAX_GPIO = 48  # the highest GPIO number of the ESP32 family (ESP32-S3)
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_HEX64 = re.compile(r"[0-9A-Fa-f]{64}\Z")


@dataclass
class Options:
    """Everything /acupdate.json can say; None means "not given"."""

    wifi_ssid: str | None = None
    wifi_key: str | None = None
    server: str | None = None
    timeout: float | None = None
    led: int | None = None
    led_active: int | None = None
    reboot: bool = True
    health_imports: list[str] = field(default_factory=list)
    health_network: bool = True
    startup_update: str | None = None
    startup_timeout: float | None = None

    def given(self) -> bool:
        """True when any option that goes into the file was given."""
        return self != Options()


def check_url(url: str) -> str:
    """The update server URL as the board accepts it: http://host[:port][/path]."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise OptionError(f"--server {url!r}: {e}") from None
    example = "use http://HOST:PORT/FOLDER, e.g. http://192.168.1.10:8000/"
    if parts.scheme != "http":
        got = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise OptionError(f"--server {url!r}: the board speaks http:// only, got {got}; {example}")
    if not parts.hostname:
        raise OptionError(f"--server {url!r} has no host; {example}")
    if parts.username is not None or parts.password is not None:
        raise OptionError(f"--server {url!r}: the board does not send user:password@; {example}")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise OptionError(f"--server {url!r}: a query or fragment is not allowed; {example}")
    if port is not None and port == 0:
        raise OptionError(f"--server {url!r}: port must be 1..65535, got 0")
    if any(seg == ".." for seg in parts.path.split("/")):
        raise OptionError(f"--server {url!r}: the path leaves the catalog folder ('..')")
    return url


def _check_seconds(option: str, value: float) -> float:
    if not 0 < value <= MAX_TIMEOUT:
        raise OptionError(
            f"{option} must be more than 0 and at most {MAX_TIMEOUT:g} seconds, got {value:g}"
        )
    return int(value) if float(value).is_integer() else value


def _check_wifi(ssid: str, key: str) -> None:
    n = len(ssid.encode())
    if not 1 <= n <= 32:
        raise OptionError(f"--wifi-ssid must be 1 to 32 bytes long, got {n} bytes")
    if key and not (8 <= len(key) <= 63 and key.isascii() or _HEX64.match(key)):
        raise OptionError(
            f"--wifi-key must be 8 to 63 ASCII characters (or 64 hex digits), got "
            f"{len(key)} characters; leave it out for an open network"
        )


def build(opts: Options) -> dict:
    """The settings dict for /acupdate.json; DeployError for an option the board refuses."""
    cfg: dict = {}
    if opts.wifi_key is not None and opts.wifi_ssid is None:
        raise OptionError("--wifi-key needs --wifi-ssid (the network's name)")
    if opts.wifi_ssid is not None:
        _check_wifi(opts.wifi_ssid, opts.wifi_key or "")
        cfg["wifi"] = {"ssid": opts.wifi_ssid, "key": opts.wifi_key or ""}

    server_only = {
        "--timeout": opts.timeout is not None,
        "--led": opts.led is not None,
        "--led-active": opts.led_active is not None,
        "--no-reboot": not opts.reboot,
        "--startup-update": opts.startup_update is not None,
    }
    if opts.server is None:
        used = [name for name, on in server_only.items() if on]
        if used:
            raise OptionError(f"{', '.join(used)} need(s) --server URL (the update server)")
    else:
        server: dict = {"url": check_url(opts.server)}
        server["timeout"] = _check_seconds("--timeout", 8 if opts.timeout is None else opts.timeout)
        if opts.led is not None:
            if not 0 <= opts.led <= MAX_GPIO:
                raise OptionError(f"--led must be a GPIO number 0..{MAX_GPIO}, got {opts.led}")
            server["led"] = opts.led
        if opts.led_active is not None:
            if opts.led is None:
                raise OptionError("--led-active needs --led PIN (the LED's GPIO)")
            if opts.led_active not in (0, 1):
                raise OptionError(f"--led-active must be 0 or 1, got {opts.led_active}")
        if opts.led is not None:
            server["led_on"] = 1 if opts.led_active is None else opts.led_active
        server["reboot"] = opts.reboot
        cfg["server"] = server

    for name in opts.health_imports:
        if not _MODULE.match(name):
            raise OptionError(f"--health-import {name!r} is not a module name (like app or app.ui)")
    network = opts.health_network and "wifi" in cfg
    health: dict = {"network": network}
    if opts.health_imports:
        health["imports"] = list(dict.fromkeys(opts.health_imports))
    cfg["health"] = health

    startup: dict = {"update": opts.startup_update is not None}
    if opts.startup_update is not None:
        image = opts.startup_update
        if not image or "/" in image or image in (".", ".."):
            raise OptionError(
                f"--startup-update {image!r}: give a file name in the server's folder "
                "(put the folder in --server, e.g. http://host:8000/fw)"
            )
        startup["image"] = image
    elif opts.startup_timeout is not None:
        raise OptionError("--startup-timeout needs --startup-update IMAGE")
    if opts.startup_update is not None:
        t = 3 if opts.startup_timeout is None else opts.startup_timeout
        startup["timeout"] = _check_seconds("--startup-timeout", t)
    cfg["startup"] = startup
    return cfg


def dumps(cfg: dict) -> str:
    """The file's text: one section a line, as the README shows it."""
    lines = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in cfg.items()]
    return "{" + ",\n ".join(lines) + "}\n"
