"""Command line: ``python -m tools.server`` (installed as ``acupdate-server``)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from tools import cli

from .core import ServerError, UpdateServer
from .export import ExportError, export
from .export import Options as ExportOptions

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

DESCRIPTION = """\
Serve a folder of firmware images to ESP32/ESP8266 devices running
AutoConnect's update agent (AutoConnectUpdate / HTTPUpdate) or acupdate.
A drop-in replacement for AutoConnect's updateserver.py: same options, same
catalog query (GET /_catalog?op=list&path=<folder>) and image replies (with
x-MD5), plus concurrent downloads, HEAD, Range, 304 when the device already
runs the image, HTTPS and basic authentication."""

EPILOG = """\
images: a .bin file whose first byte is 0xE9 is listed as "bin" (an update
candidate); other files as "file", folders as "directory". Images are served
only to clients that send the HTTPUpdate User-Agent and x-ESP32-*/x-ESP8266-*
headers. Replace an image with a rename (write a temporary file, then mv), not
in place, so a device never downloads a half-written file.

exit status: 0 after Ctrl-C or SIGTERM, 2 when the server cannot start.

For a fleet: `acupdate-server export --catalog FOLDER --out SITE` writes the
catalog as a static tree and an nginx configuration answering the same protocol
(see `acupdate-server export --help`)."""

EXPORT_DESCRIPTION = """\
Write a catalog folder as a static tree plus an nginx configuration that
answers the update-server protocol of acupdate-server: the catalog query
/_catalog?op=list&path=<folder> for every folder (the same JSON, with each
image's md5 and sha256), images with x-MD5 and x-SHA256 to ESP32/ESP8266
HTTPUpdate clients, 304 when the device runs the image already, HEAD and Range,
basic authentication and HTTPS. Run it again after changing the catalog: it
rewrites only what changed (reload nginx when it says its configuration did)."""

EXPORT_EPILOG = """\
written under --out:
  www/                   the document root: the files, and _catalog (the root
                         folder's listing); a plain static host serves this
  catalogs/              each folder's listing, for nginx's catalog query
  nginx/acupdate.conf    include it in the http {} block of your nginx
  nginx/nginx.conf       or run nginx with it as any user:
                           nginx -c SITE/nginx/nginx.conf   (absolute path)
  nginx/htpasswd         with --user
  run/                   (--run-dir) nginx.conf's pid, logs and temporary files
  export.json            what was written (for the next export)

exit status: 0 done, 2 bad options or folders."""


def _level(name: str) -> int:
    if name.upper() not in LEVELS:
        raise argparse.ArgumentTypeError(f"{name!r} is not one of {', '.join(LEVELS)}")
    return int(getattr(logging, name.upper()))


def _port(text: str) -> int:
    """argparse type of --port: 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a TCP port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is not between 0 and 65535")
    return port


def build_parser(prog: str = "acupdate-server") -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog=prog,
        description=DESCRIPTION,
        epilog=EPILOG.replace("acupdate-server", prog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-p",
        "--port",
        type=_port,
        default=8000,
        help="TCP port to listen on (default 8000; 0: any)",
    )
    parser.add_argument(
        "-b",
        "--bind",
        default="0.0.0.0",
        metavar="ADDRESS",
        help="address to listen on (default 0.0.0.0: every interface, so devices can reach it)",
    )
    parser.add_argument(
        "-d",
        "--catalog",
        default=".",
        metavar="FOLDER",
        help="folder holding the images (default: the current folder)",
    )
    parser.add_argument(
        "-l",
        "--log",
        type=_level,
        default=logging.INFO,
        metavar="LEVEL",
        help="logging level: DEBUG, INFO (default, one access line per request), WARNING...",
    )
    parser.add_argument(
        "--sha256",
        action="store_true",
        help="also give each image's SHA-256 (hex): an x-SHA256 header on image replies and "
        'a "sha256" field in each bin entry of the catalog (devices check it besides the MD5); '
        'the entries list their "md5" too (hashed once, cached): the catalog of an export',
    )
    tls = parser.add_argument_group("HTTPS")
    tls.add_argument("--cert", metavar="FILE", help="certificate chain (PEM); turns on HTTPS")
    tls.add_argument("--key", metavar="FILE", help="private key of --cert (PEM)")
    auth = parser.add_argument_group("basic authentication (every request)")
    auth.add_argument("--user", help="user name the devices must send")
    secret = auth.add_mutually_exclusive_group()
    secret.add_argument(
        "--password", help="their password (visible to local users in ps: see --password-file)"
    )
    secret.add_argument(
        "--password-file", metavar="FILE", help="read the password from the first line of FILE"
    )
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--max-clients",
        type=cli.positive_int,
        default=512,
        metavar="N",
        help="connections open at once (default 512); when all are open, a new one takes "
        "the place of the one waiting longest for its request; when all are busy answering, "
        "it gets 503",
    )
    limits.add_argument(
        "--head-timeout",
        type=cli.positive_float,
        default=10.0,
        metavar="SECONDS",
        help="time a connection has for its TLS handshake and each request head, idle time "
        "before a kept-alive request included (default 10): slow clients cannot hold it",
    )
    limits.add_argument(
        "--timeout",
        type=cli.positive_float,
        default=30.0,
        metavar="SECONDS",
        help="drop a connection when one read or write waits this long (default 30)",
    )
    parser.set_defaults(prog=prog)
    return parser


def _password(args: argparse.Namespace) -> str | None:
    if args.password_file is None:
        password: str | None = args.password
        return password
    try:
        with open(args.password_file, encoding="utf-8") as file:
            return file.readline().rstrip("\r\n")
    except OSError as err:
        raise ServerError(
            f"cannot read --password-file {args.password_file!r}: {err.strerror}"
        ) from None


def serve(args: argparse.Namespace) -> int:
    server = UpdateServer(
        args.catalog,
        host=args.bind,
        port=args.port,
        cert=args.cert,
        key=args.key,
        user=args.user,
        password=_password(args),
        timeout=args.timeout,
        max_clients=args.max_clients,
        head_timeout=args.head_timeout,
        sha256=args.sha256,
        history=0,  # the access log goes to stderr; nobody reads the in-memory copy
    )
    stop = threading.Event()
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            handlers[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        server.start()
        where = f"[{args.bind}]" if ":" in args.bind else args.bind
        prog = getattr(args, "prog", "acupdate-server")
        print(
            f"{prog}: serving {server.root} on {where}:{server.port} ({server.url}); Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return 0


def build_export_parser(prog: str = "acupdate-server export") -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog=prog,
        description=EXPORT_DESCRIPTION,
        epilog=EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-d", "--catalog", required=True, metavar="FOLDER", help="folder holding the images"
    )
    parser.add_argument("--out", required=True, metavar="SITE", help="folder to write")
    parser.add_argument(
        "--listen",
        default="8000",
        metavar="[ADDRESS:]PORT",
        help="nginx's listen address (default 8000: every IPv4 address; 127.0.0.1:8080, "
        "[::]:8443...)",
    )
    parser.add_argument(
        "--server-name", default="_", metavar="NAME", help="nginx server_name (default _)"
    )
    parser.add_argument(
        "--run-dir",
        metavar="FOLDER",
        help="where nginx.conf keeps its pid, logs and temporary files (default SITE/run)",
    )
    tls = parser.add_argument_group("HTTPS")
    tls.add_argument("--cert", metavar="FILE", help="certificate chain (PEM); turns on HTTPS")
    tls.add_argument("--key", metavar="FILE", help="private key of --cert (PEM)")
    auth = parser.add_argument_group("basic authentication (every request)")
    auth.add_argument("--user", help="user name the devices must send")
    secret = auth.add_mutually_exclusive_group()
    secret.add_argument("--password", help="their password (stored hashed in nginx/htpasswd)")
    secret.add_argument(
        "--password-file", metavar="FILE", help="read the password from the first line of FILE"
    )
    return parser


def export_main(argv: list[str], prog: str = "acupdate-server export") -> int:
    args = build_export_parser(prog).parse_args(argv)
    try:
        report = export(
            ExportOptions(
                catalog=args.catalog,
                out=args.out,
                listen=args.listen,
                server_name=args.server_name,
                cert=args.cert,
                key=args.key,
                user=args.user,
                password=_password(args),
                run_dir=args.run_dir,
            )
        )
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        raise ExportError(f"{where}{err.strerror or err}") from None
    for line in report.lines():
        print(f"export: {line}")
    conf = os.path.join(report.out, "nginx", "nginx.conf")
    print(f"export: run nginx with: nginx -c {conf}")
    if report.config_changed:
        print(f"export: a running nginx needs: nginx -s reload -c {conf}")
    return 0


def _main(argv: list[str], prog: str) -> int:
    if argv[:1] == ["export"]:
        return export_main(argv[1:], f"{prog} export")
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(
        level=args.log, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    return serve(args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    prog = cli.prog("tools.server", "acupdate-server")
    return cli.run(prog, lambda: _main(argv, prog))


if __name__ == "__main__":
    sys.exit(main())
