"""acupdate-board: create, run and inspect simulated ESP32 boards.

python -m tools.board create DIR [--image FILE | --version V] [--chip NAME] [--force]
python -m tools.board run DIR [-c CODE | --script FILE] [--main] [--heap 110K]
python -m tools.board serve DIR        serial REPL on a pty, for mpremote
python -m tools.board repl DIR         the board's REPL in this terminal (mpremote)
python -m tools.board state DIR        partition table, slots, otadata
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .board import DEFAULT_HEAP, DEFAULT_WIFI, Board, BoardError, heap_bytes

_MIN_HEAP = 16 * 1024
_AP = ", ".join(f"{ssid} (key {key})" for ssid, key in DEFAULT_WIFI.items())


def _heap(text: str) -> str:
    """argparse type of --heap: a size such as 48K, 1M or 65536, at least 16K."""
    t = text.strip()
    if not t.rstrip("kKmM").isdigit() or heap_bytes(t) < _MIN_HEAP:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 48K or 1M, at least {_MIN_HEAP // 1024}K, got {text!r}"
        )
    return t


def _prog() -> str:
    # How this program was called: the console script, or python -m tools.board.
    name = Path(sys.argv[0]).name
    return "python -m tools.board" if name in ("__main__.py", "-m", "") else name


def _create(args) -> int:
    from tools.image import ImageError, build_app

    if args.image:
        try:
            image = Path(args.image).read_bytes()
        except OSError as e:
            raise BoardError(f"cannot read image {args.image}: {e.strerror}") from e
    else:
        try:
            image = build_app(version=args.version, project=args.project, chip=args.chip)
        except ImageError as e:
            raise BoardError(str(e)) from e
    wifi = dict(w.split(":", 1) for w in args.wifi) if args.wifi else None
    board = Board.create(args.dir, image, wifi=wifi, force=args.force)
    print(f"created board {args.dir}")
    print(board.state_table())
    return 0


class Stopped(Exception):
    """SIGTERM: stop the board (its MicroPython) and exit."""


def _stop(signum, frame):
    raise Stopped


def _run(args) -> int:
    board = Board(args.dir)
    # SIGTERM ends the MicroPython child too (it runs in a session of its own, so the
    # signal does not reach it by itself): Running.wait() powers the board off.
    signal.signal(signal.SIGTERM, _stop)
    try:
        with board.claim(f"tools.board run, pid {os.getpid()}"):
            res = board.run(args.c, script=args.script, main=args.main, heap=args.heap)
    except Stopped:
        board.power_off_all()  # SIGTERM may come before board.run holds its MicroPython
        print("acupdate-board: stopped (SIGTERM): the board is off", file=sys.stderr)
        return 128 + signal.SIGTERM
    print(res.boot.log_line())
    sys.stdout.write(res.output)
    if res.stderr.strip():
        sys.stderr.write(res.stderr)
    if res.reset:
        print(f"[board: {res.reset} reset]")
    return 0 if res.returncode in (0, -signal.SIGUSR1, 64, 65) else 1


def _serve(args, interactive: bool) -> int:
    from .serial import SerialBoard

    board = Board(args.dir)
    echo = None if interactive else (lambda data: None)
    what = f"tools.board {'repl' if interactive else 'serve'}, pid {os.getpid()}"
    with board.claim(what), SerialBoard(board, heap=args.heap, echo=echo) as sb:
        link = Path(args.dir) / "tty"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(sb.device)
        if interactive:
            if not sb.wait_boots(1):
                raise BoardError(sb.error or "the board did not boot")
            print(sb.boots[0])
            print("soft reset: Ctrl-D; machine.reset() goes through the bootloader")
            return subprocess.call([_mpremote(), "connect", sb.device, "repl"])
        print(f"board serial port: {sb.device} (also {link})", flush=True)
        print(f"try: mpremote connect {sb.device} repl     (Ctrl-C here stops the board)")
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        link.unlink()
    return 0


def _mpremote() -> str:
    exe = Path(sys.executable).parent / "mpremote"
    return str(exe) if exe.exists() else "mpremote"


def _state(args) -> int:
    print(Board(args.dir).state_table())
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog=_prog(),
        description=__doc__.split("\n")[0],
        epilog=f"A new board's Wi-Fi offers one access point: {_AP}; boot.py joins it.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create", help="a new board with an image in ota_0")
    c.add_argument("dir", help="the board's folder (flash file, filesystem, board.json)")
    c.add_argument("--image", help="app image for ota_0 (default: build one)")
    c.add_argument("--version", default="1.0.0", help="version of the built image")
    c.add_argument("--project", default="acupdate-demo", help="project name of the built image")
    c.add_argument("--chip", default="esp32", help="chip of the built image (esp32, esp32s3, ...)")
    c.add_argument(
        "--wifi",
        action="append",
        metavar="SSID:KEY",
        help=f"an access point the board's Wi-Fi offers (repeatable; default: {_AP})",
    )
    c.add_argument("--force", action="store_true", help="replace a board that is there already")
    r = sub.add_parser("run", help="power on, run boot.py (and main.py), then code")
    r.add_argument("dir", help="the board's folder (python -m tools.board create DIR)")
    r.add_argument("-c", metavar="CODE", help="code to run after boot")
    r.add_argument("--script", help="a file to run after boot")
    r.add_argument("--main", action="store_true", help="run main.py too")
    r.add_argument(
        "--heap", type=_heap, default=DEFAULT_HEAP, help="application heap (as -X heapsize)"
    )
    for name, text in (("serve", "serial REPL on a pty"), ("repl", "REPL in this terminal")):
        s = sub.add_parser(name, help=text)
        s.add_argument("dir", help="the board's folder (python -m tools.board create DIR)")
        s.add_argument(
            "--heap", type=_heap, default=DEFAULT_HEAP, help="application heap (as -X heapsize)"
        )
    st = sub.add_parser("state", help="partition table, OTA slots and otadata")
    st.add_argument("dir", help="the board's folder")
    args = p.parse_args(argv)
    try:
        if args.cmd == "create":
            return _create(args)
        if args.cmd == "run":
            return _run(args)
        if args.cmd in ("serve", "repl"):
            return _serve(args, args.cmd == "repl")
        return _state(args)
    except BoardError as e:
        print(f"acupdate-board: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"acupdate-board: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
