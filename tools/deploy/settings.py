"""The board settings file, /acupdate.json, built from command-line options.

Its sections are what device/acupdate reads: "wifi" (acupdate.startup.wifi),
"server" (acupdate.config.Config.from_dict), "health" (acupdate.startup.health),
"startup" (acupdate.startup.check) and "signing" (the Secure Boot V2 keys the board trusts,
acupdate.ota.trust: {"trusted": [64 hex digits, ...], "required": true|false}). Every
value is checked here, on the host, with the same rules the board applies (acupdate.settings
for "server"), so a bad option fails at deploy time with a message instead of on the board
after the next reset.

A CA certificate (--ca) is a file of its own on the board: `board_files()` says which
host file goes where; "server" names it by its board path.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tools.image.signature import SigningKeyError, key_digest

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
    # The transport (acupdate.settings): CA file on the host, basic auth, timing.
    ca: str | None = None
    user: str | None = None
    password: str | None = None
    connect_timeout: float | None = None
    deadline: float | None = None
    retries: int | None = None
    backoff: float | None = None
    # Signed updates: key files (PEM) and key digests (hex) the board trusts.
    trust_keys: list[str] = field(default_factory=list)
    trust_digests: list[str] = field(default_factory=list)
    require_signature: bool = False

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
    example = "use http://HOST:PORT/FOLDER, e.g. http://192.168.1.10:8000/ (or https://)"
    if parts.scheme not in ("http", "https"):
        got = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise OptionError(
            f"--server {url!r}: the board speaks http:// and https:// only, got {got}; {example}"
        )
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
    return _number(value)


def _number(value: float) -> float:
    """A whole figure as an int in the JSON (8, not 8.0), like the README shows."""
    return int(value) if float(value).is_integer() else value


def _check_more_than_0(option: str, value: float) -> float:
    # acupdate.settings: deadline must be > 0 seconds. NaN and infinity are refused too: JSON has
    # no words for them that the board's json module reads.
    if not (math.isfinite(value) and value > 0):
        raise OptionError(f"{option} must be more than 0 seconds, got {value:g}")
    return _number(value)


def _check_user(user: str | None, password: str | None) -> None:
    # acupdate.settings: user and password come together; user is a name without ':' (basic
    # authentication sends base64 of user:password).
    if user is None and password is None:
        return
    if password is None:
        raise OptionError("--user needs --password (basic authentication sends both)")
    if user is None:
        raise OptionError("--password needs --user (basic authentication sends both)")
    if not user:
        raise OptionError("--user must not be empty")
    if ":" in user:
        raise OptionError(
            f"--user {user!r}: a user name cannot hold ':' (basic authentication "
            "joins user:password with it)"
        )


PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
PEM_END = "-----END CERTIFICATE-----"
CA_KINDS = {"pem": "/ca.pem", "der": "/ca.der"}


def _der_length(data: bytes) -> int | None:
    """The length an ASN.1 SEQUENCE's header says it has, header included (None: no
    readable header)."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    n = data[1]
    if n < 0x80:
        return 2 + n
    k = n & 0x7F
    if not 1 <= k <= 4 or len(data) < 2 + k:
        return None
    return 2 + k + int.from_bytes(data[2 : 2 + k], "big")


def _pem_certificates(name: str, text: str) -> int:
    """How many certificates a PEM file holds, each checked as acupdate.http.tls reads it:
    base64 lines between BEGIN and END CERTIFICATE, decoding to a DER SEQUENCE."""
    count = 0
    block: list[str] | None = None
    for no, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if block is None:
            if line == PEM_BEGIN:
                block = []
            elif line.startswith("-----BEGIN CERTIFICATE"):
                # The board takes any such line for a certificate's start.
                raise OptionError(f"--ca {name}: line {no} is {line!r}, not a certificate")
        elif line.startswith("-----END"):
            if line != PEM_END:
                raise OptionError(f"--ca {name}: line {no} ends the certificate with {line!r}")
            try:
                der = base64.b64decode("".join(block), validate=True)
            except (binascii.Error, ValueError):
                raise OptionError(
                    f"--ca {name}: the certificate that ends on line {no} is not valid base64"
                ) from None
            size = _der_length(der)
            if size is None:
                raise OptionError(
                    f"--ca {name}: the certificate that ends on line {no} is not DER inside "
                    f"(it decodes to {der[:8]!r}..., a certificate starts with 0x30)"
                )
            if size != len(der):
                raise OptionError(
                    f"--ca {name}: the certificate that ends on line {no} decodes to "
                    f"{len(der)} bytes, its DER header says {size}"
                )
            count += 1
            block = None
        else:
            block.append(line)
    if block is not None:
        raise OptionError(f"--ca {name}: the last certificate has no {PEM_END} line (cut off?)")
    return count


def check_ca(path: str) -> tuple[Path, str]:
    """The CA certificate file --ca names: (host path, its path on the board). The board
    reads one DER certificate (the file starts with 0x30) or PEM ones; anything else is
    refused here, as the board would refuse it at its first https request."""
    src = Path(path)
    try:
        data = src.read_bytes()
    except FileNotFoundError:
        raise OptionError(f"--ca {path}: no such file") from None
    except IsADirectoryError:
        raise OptionError(f"--ca {path} is a folder: give the CA certificate's file") from None
    except OSError as e:
        raise OptionError(f"--ca {path}: cannot read it ({e.strerror})") from None
    what = "a CA certificate, PEM (-----BEGIN CERTIFICATE-----) or DER (first byte 0x30)"
    if not data:
        raise OptionError(f"--ca {path} is empty (0 bytes): give {what}")
    if data[0] == 0x30:
        kind = "der"
        size = _der_length(data)
        if size != len(data):
            raise OptionError(
                f"--ca {path}: a DER certificate whose header says {size} bytes, but the "
                f"file has {len(data)} (cut off, or more than one? put a bundle in PEM)"
            )
    else:
        kind = "pem"
        text = data.decode("latin-1")
        if not _pem_certificates(path, text):
            labels = sorted(set(re.findall(r"-----BEGIN ([A-Z0-9 ]+)-----", text)))
            if labels:
                raise OptionError(
                    f"--ca {path} holds no certificate, only PEM {', '.join(labels)}: give {what}"
                )
            raise OptionError(
                f"--ca {path} is neither PEM nor DER (first bytes {data[:16]!r}): give {what}"
            )
    ext = src.suffix.lower()
    board = "/ca" + ext if ext[1:].isalnum() else CA_KINDS[kind]
    return src, board


def board_files(opts: Options) -> list[tuple[Path, str]]:
    """The files besides /acupdate.json that the settings need on the board: (host path,
    board path) pairs (the CA certificate)."""
    return [check_ca(opts.ca)] if opts.ca is not None and opts.server is not None else []


def shown(cfg: dict) -> dict:
    """The settings with the Wi-Fi key and the password hidden, for printing."""
    out = {}
    for section, values in cfg.items():
        if isinstance(values, dict):
            values = {k: "***" if k in ("key", "password") and v else v for k, v in values.items()}
        out[section] = values
    return out


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
        "--ca": opts.ca is not None,
        "--user": opts.user is not None,
        "--password": opts.password is not None,
        "--connect-timeout": opts.connect_timeout is not None,
        "--deadline": opts.deadline is not None,
        "--retries": opts.retries is not None,
        "--backoff": opts.backoff is not None,
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
        server.update(_transport(opts))
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
    signing = _signing(opts)
    if signing is not None:
        cfg["signing"] = signing
    return cfg


def _key_file_digest(path: str) -> str:
    """The hex digest of the key in a PEM file (public or private), as espsecure
    digest-sbv2-public-key computes it."""
    try:
        pem = Path(path).read_bytes()
    except FileNotFoundError:
        raise OptionError(f"--trust-key {path}: no such file") from None
    except IsADirectoryError:
        raise OptionError(f"--trust-key {path} is a folder: give the key's PEM file") from None
    except OSError as e:
        raise OptionError(f"--trust-key {path}: cannot read it ({e.strerror})") from None
    try:
        return key_digest(pem, f"--trust-key {path}").hex()
    except SigningKeyError as e:
        raise OptionError(str(e)) from None


def _signing(opts: Options) -> dict | None:
    """The "signing" section: the trusted key digests (each once, in the order given) and
    whether unsigned images are refused; None when no key is given."""
    digests = [_key_file_digest(p) for p in opts.trust_keys]
    for text in opts.trust_digests:
        # as given, or as `espsecure signature-info-v2` prints it (bytes between spaces)
        h = "".join(text.split())
        if not _HEX64.match(h):
            raise OptionError(
                f"--trust-digest {text!r}: give the key digest as 64 hex digits (the 32 bytes "
                "`espsecure digest-sbv2-public-key` writes), or --trust-key with the key's PEM"
            )
        digests.append(h.lower())
    if not digests:
        if opts.require_signature:
            raise OptionError(
                "--require-signature needs the key(s) the board trusts: --trust-key PEM or "
                "--trust-digest HEX"
            )
        return None
    return {"trusted": list(dict.fromkeys(digests)), "required": opts.require_signature}


def _transport(opts: Options) -> dict:
    """The "server" keys of the transport, checked as acupdate.settings checks them."""
    out: dict = {}
    if opts.ca is not None:
        out["ca"] = check_ca(opts.ca)[1]
    elif urlsplit(opts.server or "").scheme == "https":
        raise OptionError(
            f"--server {opts.server!r} is https: give --ca FILE, the CA certificate that "
            "signed the server's (PEM or DER); the board checks the server with it"
        )
    _check_user(opts.user, opts.password)
    if opts.user is not None:
        out["user"] = opts.user
        out["password"] = opts.password
    if opts.connect_timeout is not None:
        out["connect_timeout"] = _check_seconds("--connect-timeout", opts.connect_timeout)
    if opts.deadline is not None:
        out["deadline"] = _check_more_than_0("--deadline", opts.deadline)
    if opts.retries is not None:
        if opts.retries < 0:
            raise OptionError(
                f"--retries must be 0 or more (resumes of a dropped download), got {opts.retries}"
            )
        out["retries"] = opts.retries
    if opts.backoff is not None:
        b = opts.backoff
        if not (math.isfinite(b) and b >= 0):
            raise OptionError(f"--backoff must be 0 or more seconds, got {b:g}")
        out["backoff"] = _number(b)
    return out


def dumps(cfg: dict) -> str:
    """The file's text: one section a line, as the README shows it."""
    lines = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in cfg.items()]
    return "{" + ",\n ".join(lines) + "}\n"
