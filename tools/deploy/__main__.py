"""acupdate-deploy: put the acupdate agent on a MicroPython ESP32 with mpremote.

  python -m tools.deploy [--device DEV] [settings options]   compile, copy, check
  python -m tools.deploy config [settings options] [-o FILE]  only print/write the JSON

Deploying compiles device/acupdate/*.py with mpy-cross (into build/deploy/), stops what
the board runs with Ctrl-C (with --device: a slow or stuck boot.py cannot keep mpremote
out, since the copy then goes without a soft reset, mpremote resume), then, in one
mpremote session, empties /lib/acupdate on the board and copies the .mpy files
there, copies /boot.py and /main.py, writes /acupdate.json from the settings options
(when any is given; otherwise the board keeps the file it has) with the CA certificate
of --ca (as /ca.pem or /ca.der), and finally lists the files, reads the settings back
and imports acupdate.config on the board to check it.

Examples:
  python -m tools.deploy --device /dev/ttyUSB0 --wifi-ssid lab --wifi-key secret123 \\
      --server http://192.168.1.10:8000/ --led 2 --health-import app
  python -m tools.deploy --device /dev/ttyUSB0 --wifi-ssid lab --wifi-key secret123 \\
      --server https://updates.lan/fw --ca ca.pem --user fleet --password s3cret \\
      --deadline 300 --retries 5
  # only images signed with key.pem (espsecure sign-data --version 2 --keyfile key.pem)
  python -m tools.deploy --device /dev/ttyUSB0 --config-only --server http://h:8000/ \
      --trust-key key.pem --require-signature
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

from tools import cli

from .core import BUILD, deploy
from .errors import OptionError
from .settings import Options, board_files, build, dumps, shown


def _settings_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("board settings (/acupdate.json)")
    g.add_argument("--wifi-ssid", metavar="SSID", help="access point that boot.py joins")
    g.add_argument("--wifi-key", metavar="KEY", help="its WPA2 key (leave out: open network)")
    g.add_argument(
        "--server",
        metavar="URL",
        help="update server, http://host:port/folder (port 8000 when left out) or "
        "https://host:port/folder (port 443; needs --ca)",
    )
    g.add_argument(
        "--timeout", type=float, metavar="S", help="server connect/read timeout (default 8 s)"
    )
    g.add_argument(
        "--led", type=int, metavar="PIN", help="GPIO of an LED that blinks while updating"
    )
    g.add_argument(
        "--led-active", type=int, choices=(0, 1), metavar="0|1", help="LED on level (default 1)"
    )
    g.add_argument(
        "--no-reboot",
        dest="reboot",
        action="store_false",
        help="after an update, do not reset by itself (default: reset after a 3 s countdown)",
    )
    g.add_argument(
        "--health-import",
        action="append",
        default=[],
        metavar="MOD",
        help="a new image is confirmed only if MOD imports (repeatable; default: app, "
        "when /app.py exists)",
    )
    g.add_argument(
        "--no-health-network",
        dest="health_network",
        action="store_false",
        help="confirm a new image without Wi-Fi being up (default: Wi-Fi must join, "
        "when --wifi-ssid is given)",
    )
    g.add_argument(
        "--startup-update",
        metavar="IMAGE",
        help="main.py asks the server for IMAGE at every start and installs it when it differs",
    )
    g.add_argument(
        "--startup-timeout", type=float, metavar="S", help="that check's timeout (default 3 s)"
    )
    t = p.add_argument_group('update server transport (/acupdate.json "server")')
    t.add_argument(
        "--ca",
        metavar="FILE",
        help="CA certificate that signed the https server's (PEM, a bundle too, or one DER "
        "certificate); copied to the board as /ca plus the file's extension (/ca.pem, "
        "/ca.der, ...; without one, by its content)",
    )
    t.add_argument("--user", metavar="NAME", help="basic authentication user (with --password)")
    t.add_argument(
        "--password",
        metavar="PW",
        help="basic authentication password (with --user); stored in plain text in "
        "/acupdate.json on the board",
    )
    t.add_argument(
        "--connect-timeout",
        type=float,
        metavar="S",
        help="timeout of the TCP connect (default: --timeout, which also bounds each read "
        "and the TLS handshake)",
    )
    t.add_argument(
        "--deadline",
        type=float,
        metavar="S",
        help="the most a whole update may take, retries included (default 600 s)",
    )
    t.add_argument(
        "--retries",
        type=int,
        metavar="N",
        help="resume a dropped download up to N times (default 3; 0: never)",
    )
    t.add_argument(
        "--backoff",
        type=float,
        metavar="S",
        help="wait S seconds before the first resume, then 2x, 4x... (default 0.5)",
    )
    _signing_options(p)


def _signing_options(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group(
        'signed updates (/acupdate.json "signing"): Secure Boot V2 signatures (RSA-3072 or '
        "ECDSA P-256) as `espsecure sign-data --version 2` makes them"
    )
    s.add_argument(
        "--trust-key",
        action="append",
        default=[],
        metavar="PEM",
        help="trust images signed with this key (public or private PEM; only its digest "
        "goes to the board) (repeatable)",
    )
    s.add_argument(
        "--trust-digest",
        action="append",
        default=[],
        metavar="HEX",
        help="trust the key with this digest: 64 hex digits, the 32 bytes `espsecure "
        "digest-sbv2-public-key` writes (repeatable)",
    )
    s.add_argument(
        "--require-signature",
        action="store_true",
        help="refuse unsigned images (default: an unsigned image is taken, a signed one "
        "must be signed by a trusted key)",
    )


def _options(args) -> Options:
    return Options(
        wifi_ssid=args.wifi_ssid,
        wifi_key=args.wifi_key,
        server=args.server,
        timeout=args.timeout,
        led=args.led,
        led_active=args.led_active,
        reboot=args.reboot,
        health_imports=args.health_import,
        health_network=args.health_network,
        startup_update=args.startup_update,
        startup_timeout=args.startup_timeout,
        ca=args.ca,
        user=args.user,
        password=args.password,
        connect_timeout=args.connect_timeout,
        deadline=args.deadline,
        retries=args.retries,
        backoff=args.backoff,
        trust_keys=args.trust_key,
        trust_digests=args.trust_digest,
        require_signature=args.require_signature,
    )


def _parser(prog: str = "acupdate-deploy") -> argparse.ArgumentParser:
    p = cli.Parser(
        prog=prog,
        description=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--device",
        "-d",
        metavar="DEV",
        help="the board's serial port, as for `mpremote connect` (default: auto, the first "
        "USB serial port mpremote finds)",
    )
    p.add_argument("--source", action="store_true", help="copy the .py files, not .mpy")
    p.add_argument("--config-only", action="store_true", help="only write /acupdate.json (no code)")
    p.add_argument("--reset", action="store_true", help="hard reset the board at the end")
    p.add_argument("--build-dir", type=Path, default=BUILD, metavar="DIR", help=f"default {BUILD}")
    p.add_argument(
        "--dry-run", action="store_true", help="build and show the mpremote command, copy nothing"
    )
    _settings_options(p)
    return p


def _config_parser(prog: str = "acupdate-deploy config") -> argparse.ArgumentParser:
    p = cli.Parser(
        prog=prog,
        description="Print the board settings file /acupdate.json for these options "
        "(or write it with -o), without touching a board.",
    )
    p.add_argument("-o", "--output", type=Path, help="write the file here instead of stdout")
    _settings_options(p)
    return p


def _config(argv: list[str], prog: str) -> int:
    args = _config_parser(prog).parse_args(argv)
    opts = _options(args)
    text = dumps(build(opts))
    if args.output:
        try:
            args.output.write_text(text)
        except OSError as e:
            raise OptionError(f"cannot write {args.output}: {e.strerror}") from None
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    for src, dest in board_files(opts):
        print(f"the board needs {dest} too: mpremote cp {src} :{dest}", file=sys.stderr)
    return 0


def _check_device(device: str | None) -> None:
    """A --device given as a path must be a serial port there (a character device, as a
    USB serial adapter or a pty): one line now, not mpremote's failure after the build.
    mpremote's other spellings (auto, a0, u0, id:..., rfc2217://...) go to mpremote as given."""
    if not device or not device.startswith("/"):
        return
    try:
        mode = os.stat(device).st_mode
    except OSError as e:
        raise OptionError(
            f"--device {device}: {e.strerror} (is the board plugged in? `mpremote connect "
            "list` lists the serial ports)"
        ) from None
    if not stat.S_ISCHR(mode):
        raise OptionError(f"--device {device} is not a serial port (a character device)")


def _check_build_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OptionError(f"--build-dir {path}: {e.strerror}") from None


def _deploy(argv: list[str], prog: str) -> int:
    args = _parser(prog).parse_args(argv)
    opts = _options(args)
    cfg = build(opts) if opts.given() else None
    if args.config_only and cfg is None:
        raise OptionError("--config-only needs settings options (e.g. --server URL)")
    _check_device(args.device)
    _check_build_dir(args.build_dir)
    if cfg is None:
        print("no settings options: the board keeps its /acupdate.json")
    target = args.device or "auto (mpremote's first USB serial port)"
    print(f"deploying acupdate to {target}")
    report = deploy(
        args.device,
        cfg,
        dumps(cfg) if cfg is not None else None,
        build=args.build_dir,
        source=args.source,
        config_only=args.config_only,
        reset=args.reset,
        dry_run=args.dry_run,
        files=board_files(opts),
    )
    if args.dry_run:
        return 0
    files = report["files"]
    pkg = sorted(p for p in files if p.startswith("/lib/acupdate/"))
    if not args.config_only:
        total = sum(files[p] for p in pkg)
        print(f"board: /lib/acupdate: {len(pkg)} files, {total} bytes; /boot.py, /main.py")
        print(f"board: acupdate.config imports from {report['module']}")
    for src, dest in board_files(opts):
        print(f"board: {dest}, {files[dest]} bytes, CA certificate from {src}")
    if cfg is not None:
        print(f"board: /acupdate.json = {dumps(shown(cfg)).strip()}")
    if args.reset:
        print("board: hard reset")
    elif not args.config_only:
        print(
            "board: the new boot.py (Wi-Fi, health check) runs from the board's next reset: "
            "--reset, or Ctrl-D at its REPL"
        )
    return 0


def _main(argv: list[str], prog: str) -> int:
    if argv[:1] == ["config"]:
        return _config(argv[1:], f"{prog} config")
    return _deploy(argv, prog)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = cli.prog("tools.deploy", "acupdate-deploy")
    return cli.run(prog, lambda: _main(argv, prog))


if __name__ == "__main__":
    sys.exit(main())
