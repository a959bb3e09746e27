"""acupdate-image (python -m tools.image): build, merged, inspect. Run it with --help."""

import argparse
import hashlib
import re
import sys

from tools import cli

from . import CHIPS, ImageError, build_app, build_merged, inspect

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|0x[0-9a-f]+)\s*([kmKM]i?[bB]?)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'65536', '0x10000', '64K', '1.5M' (K = 1024, M = 1048576) -> bytes."""
    m = _SIZE_RE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(
            f"size {text!r} not understood; use bytes (65536, 0x10000) or 64K, 1.5M"
        )
    num, unit = m.groups()
    value = int(num, 16) if num.lower().startswith("0x") else float(num)
    scale = {"k": 1024, "m": 1024 * 1024}.get((unit or " ")[0].lower(), 1)
    return int(value * scale)


def _parser(prog: str = "python -m tools.image") -> argparse.ArgumentParser:
    p = cli.Parser(
        prog=prog,
        description="Build synthetic ESP32 app images and inspect ESP images "
        "(header, segments, checksum, appended SHA-256, app description, signature sector).",
        epilog="Chips: " + ", ".join(f"{n} (id {i})" for n, i in CHIPS.items()),
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    b = sub.add_parser(
        "build",
        help="write a valid synthetic app image",
        description="Write a valid app image: esp_app_desc_t first, deterministic payload "
        "from --seed, checksum and (unless --no-hash) SHA-256. Same arguments, same bytes.",
    )
    b.add_argument("-o", "--output", required=True, metavar="FILE", help="image file to write")
    b.add_argument("--version", default="1.0.0", help="app version string (default 1.0.0)")
    b.add_argument("--project", default="acupdate-demo", help="project name")
    b.add_argument("--chip", default="esp32", help="chip name or id (default esp32)")
    b.add_argument(
        "--size", type=parse_size, default=64 * 1024, help="approximate length: 65536, 64K, 1.5M"
    )
    b.add_argument("--no-hash", action="store_true", help="do not append the SHA-256")
    b.add_argument("--seed", type=int, default=0, help="payload seed (default 0)")
    b.add_argument("--idf-ver", default="v5.4.1", help="ESP-IDF version recorded (v5.4.1)")

    m = sub.add_parser(
        "merged",
        help="write a merged download (bootloader + partition table + app)",
        description="Write what `esptool merge-bin` makes for flashing at the bootloader "
        "offset: bootloader, 0xFF fill, partition table at 0x8000, app at 0x10000. It "
        "starts with 0xE9 but is not an OTA app: an update agent must refuse it.",
    )
    m.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")
    m.add_argument("--chip", default="esp32", help="chip name or id (default esp32)")
    m.add_argument("--app", metavar="FILE", help="app image to include (default: build one)")

    i = sub.add_parser(
        "inspect",
        help="check images and print a report",
        description="Print a report for each file, with the Secure Boot V2 signature sector "
        "of a signed image (espsecure sign-data --version 2): its blocks, versions, key "
        "digests, CRCs, and whether each signs the image. Exit 0 when all are valid images "
        "(every signature block there intact and signing the image), 1 when any is not, 2 "
        "on a usage or I/O error.",
    )
    i.add_argument("files", nargs="+", metavar="FILE", help="image files (app, bootloader, ...)")
    return p


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _write(path: str, data: bytes) -> None:
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise ImageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _run(args: argparse.Namespace) -> int:
    if args.cmd == "build":
        data = build_app(
            version=args.version,
            project=args.project,
            chip=args.chip,
            size=args.size,
            idf_ver=args.idf_ver,
            hash_appended=not args.no_hash,
            seed=args.seed,
        )
        _write(args.output, data)
        md5 = hashlib.md5(data).hexdigest()
        print(f"{args.output}: {len(data)} bytes, {args.chip} app {args.version!r}, md5 {md5}")
        return 0
    if args.cmd == "merged":
        app = _read(args.app) if args.app else None
        data = build_merged(app, chip=args.chip)
        _write(args.output, data)
        print(f"{args.output}: {len(data)} bytes, merged download for {args.chip}")
        return 0
    blobs = [(path, _read(path)) for path in args.files]
    ok = True
    for k, (path, data) in enumerate(blobs):
        info = inspect(data)
        if k:
            print()
        print(f"{path}:")
        print(info.summary())
        ok = ok and info.valid
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    prog = cli.prog("tools.image", "acupdate-image")
    return cli.run(prog, lambda: _run(_parser(prog).parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
