"""acupdate-demo: a simulated ESP32 updated over the air, end to end, in one command.

1. builds two firmware images, v1.0.0 and v2.0.0 (tools.image);
2. starts the update server (tools.server) on a free loopback port, serving a catalog
   folder with v2 as app.bin, a text file and a sub-folder;
3. creates a simulated ESP32 running v1 and deploys the agent onto it with
   tools.deploy (mpy-cross, then the real mpremote over the board's serial port),
   its settings pointing at that server;
4. on the board's REPL (mpremote exec): acupdate.repl.ls() lists the catalog,
   acupdate.repl.update() downloads v2 with its progress line, then a hard reset;
5. shows the bootloader starting v2 pending verification, boot.py's health check
   confirming it, the slot table on the board (acupdate.repl.status()) and from the
   host, and one more reset that keeps v2;
6. prints a summary (versions, bytes, MD5, seconds) and stops everything it started.

With --signed, v2 is signed with a key made by Espressif's espsecure (Secure Boot V2,
RSA-3072), the board is deployed trusting that key only (--trust-key, --require-signature),
and before v2 a copy of it with one bit flipped is offered: the board refuses it (image
changed after signing), writes nothing bootable and keeps running v1.

With --interactive it then leaves you at the board's REPL (mpremote repl) with the
server still running. Any failure says what failed and exits with status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tools import cli
from tools.board import Board
from tools.board.serial import SerialBoard
from tools.deploy import __main__ as deploy_cli
from tools.image import build_app
from tools.server import UpdateServer

PROJECT = "acupdate-demo"
OLD, NEW = "1.0.0", "2.0.0"
IMAGE_SIZE = 1536 * 1024  # 1.5 MiB, the size of an OTA slot in MicroPython's layout
SECTOR = 4096
TAMPERED = "app-tampered.bin"
WIFI = ("acupdate-lab", "otapass123")  # an access point the simulated board can see
MPREMOTE_TIMEOUT = 120
CONFIRMED = "new image confirmed after its health check"
HEALTH_FAILED = "health check failed"


class DemoError(cli.CLIError):
    """A demo step failed; the message says which and why. Exit status 1."""

    exit_code = 1


def step(n: int | None, text: str) -> None:
    print(f"\n== {n}. {text}" if n is not None else f"\n== {text}", flush=True)


def say(text: str) -> None:
    print(f"   {text}", flush=True)


def mpremote_exe() -> str:
    exe = Path(sys.executable).parent / "mpremote"
    return str(exe) if exe.exists() else "mpremote"


class SerialLog:
    """Everything the board prints on its serial port, for waiting on and showing."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._cond = threading.Condition()

    def __call__(self, chunk: bytes) -> None:
        with self._cond:
            self.data += chunk
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.data)

    def text(self, since: int = 0) -> str:
        with self._cond:
            raw = bytes(self.data[since:])
        lines = raw.decode(errors="replace").replace("\r\n", "\n").split("\n")
        # A line redrawn with CR (the progress line) shows as its last drawing.
        text = "\n".join(line.rsplit("\r", 1)[-1] for line in lines)
        return re.sub(r"[\x00-\x08\x0b-\x1f\ufffd]", "", text)

    def wait_for(self, *needles: str, since: int = 0, timeout: float = 30) -> str | None:
        """Wait until one of `needles` was printed after `since`; returns it (None: timeout)."""
        with self._cond:
            found: list[str] = []

            def seen() -> bool:
                text = bytes(self.data[since:])
                found[:] = [n for n in needles if n.encode() in text]
                return bool(found)

            return found[0] if self._cond.wait_for(seen, timeout) else None


def espsecure(*args: str) -> str:
    """Run Espressif's espsecure (the one next to this Python), shown as a user types it."""
    exe = Path(sys.executable).parent / "espsecure"
    print(f"$ espsecure {' '.join(args)}", flush=True)
    res = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)
    if res.returncode:
        raise DemoError(f"espsecure {args[0]} failed:\n{res.stdout}{res.stderr}")
    return res.stdout


class Demo:
    def __init__(self, workdir: Path, interactive: bool, signed: bool = False) -> None:
        self.workdir = workdir
        self.interactive = interactive
        self.signed = signed
        self.serial_log = SerialLog()
        self.sb: SerialBoard | None = None

    # helpers ---------------------------------------------------------------------
    def mpremote(self, *args: str, what: str) -> str:
        """Run the real mpremote on the board, its output shown live; returns the output."""
        assert self.sb is not None
        argv = [mpremote_exe(), "connect", self.sb.device, *args]
        shown = " ".join(a if " " not in a else repr(a) for a in ["mpremote", *argv[1:]])
        print(f"$ {shown}", flush=True)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        out = bytearray()
        timer = threading.Timer(MPREMOTE_TIMEOUT, proc.kill)
        timer.start()
        try:
            while chunk := os.read(proc.stdout.fileno(), 4096):
                out += chunk
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            rc = proc.wait()
        finally:
            timer.cancel()
            proc.stdout.close()
        text = out.decode(errors="replace")
        if rc:
            how = f"killed after {MPREMOTE_TIMEOUT} s" if rc < 0 else f"exit {rc}"
            raise DemoError(f"{what}: mpremote failed ({how})")
        if "Traceback (most recent call last)" in text:
            raise DemoError(f"{what}: the board raised an exception (above)")
        return text

    def serial_lines(self, since: int, start: str = "") -> None:
        """Show what the board printed on its serial port since `since`, from `start` on."""
        text = self.serial_log.text(since)
        for line in text[max(text.find(start), 0) :].splitlines():
            if line.strip() and not line.startswith(("MicroPython v", "Type ")):
                print(f"   serial | {line.rstrip()}")

    # the demo ---------------------------------------------------------------------
    def run(self) -> int:
        t0 = time.monotonic()
        step(1, "building two firmware images with tools.image")
        v1 = build_app(version=OLD, project=PROJECT, size=IMAGE_SIZE, seed=1)
        # A signed image is the app padded to 4 KiB and a 4 KiB sector: it must fit the slot.
        size = IMAGE_SIZE - 2 * SECTOR if self.signed else IMAGE_SIZE
        v2 = build_app(version=NEW, project=PROJECT, size=size, seed=2)
        tampered = None
        if self.signed:
            v2, tampered = self.sign(v2)
        md5 = hashlib.md5(v2).hexdigest()
        say(f"v{OLD}: {len(v1)} bytes, md5 {hashlib.md5(v1).hexdigest()}")
        say(f"v{NEW}: {len(v2)} bytes, md5 {md5}")

        step(2, "starting the update server (tools.server) on a free loopback port")
        catalog = self.workdir / "catalog"
        (catalog / "archive").mkdir(parents=True, exist_ok=True)
        (catalog / "app.bin").write_bytes(v2)
        (catalog / "archive" / f"app-{OLD}.bin").write_bytes(v1)
        (catalog / "RELEASE-NOTES.txt").write_text(f"{NEW}: the demo's new firmware\n")
        if tampered is not None:
            (catalog / TAMPERED).write_bytes(tampered)
        with UpdateServer(catalog, host="127.0.0.1", port=0) as server:
            url = server.url + "/"
            say(f"catalog folder {catalog}:")
            say(f"  app.bin (v{NEW}), RELEASE-NOTES.txt, archive/app-{OLD}.bin")
            if tampered is not None:
                say(f"  {TAMPERED} (v{NEW} signed, then one bit changed)")
            say(f"serving it at {url}")
            say(f"its catalog query {url}_catalog?op=list&path=. answers:")
            for entry in _catalog(url):
                say(f"  {json.dumps(entry)}")
            return self.with_server(server, url, v1, v2, md5, t0)

    def with_server(self, server, url, v1, v2, md5, t0) -> int:
        step(3, f"a simulated ESP32 running v{OLD}; deploying the agent with tools.deploy")
        board = Board.create(self.workdir / "board", v1, wifi={WIFI[0]: WIFI[1]})
        with SerialBoard(board, echo=self.serial_log) as sb:
            self.sb = sb
            if not sb.wait_boots(1):
                raise DemoError(f"the board did not boot: {sb.error or 'no boot line in 30 s'}")
            say(sb.boots[0])
            old = _field(sb.boots[0], "version")
            say(f"serial port {sb.device} (mpremote connects to it as to a real board)")
            argv = ["--device", sb.device, "--build-dir", str(self.workdir / "build")]
            argv += ["--wifi-ssid", WIFI[0], "--wifi-key", WIFI[1], "--server", url]
            if self.signed:
                argv += ["--trust-key", str(self.workdir / "key.pem"), "--require-signature"]
            print(f"$ python -m tools.deploy {' '.join(argv)}", flush=True)
            rc = deploy_cli.main(argv)
            if rc:
                raise DemoError(f"deploying the agent failed (exit {rc}, see above)")

            step(4, "on the board's REPL: list the catalog, update to v2, reset")
            self.mpremote("exec", "import acupdate.repl; acupdate.repl.ls()", what="ls()")
            if self.signed:
                self.refused()
            before = len(server.access_log)
            mark = self.serial_log.mark()
            t_up = time.monotonic()
            name = "'app.bin', " if self.signed else ""
            out = self.mpremote(
                "exec",
                f"import acupdate.repl; acupdate.repl.update({name}reboot=False)",
                "+",
                "reset",
                what="update()",
            )
            t_up = time.monotonic() - t_up
            if "Update successful" not in out:
                raise DemoError("update(): the board did not report 'Update successful'")
            for line in list(server.access_log)[before:]:
                say(f"server log | {line}")

            step(5, "the board boots v2 pending verification; boot.py confirms it")
            if not sb.wait_boots(2):
                raise DemoError(f"the board did not come back after the reset: {sb.error}")
            got = self.serial_log.wait_for(CONFIRMED, HEALTH_FAILED, since=mark)
            if got == HEALTH_FAILED:  # boot.py resets at once: the bootloader rolls back
                sb.wait_boots(3)
            self.serial_lines(mark, start=sb.boots[1])
            boot = sb.boots[1]
            if _field(boot, "version") != NEW or _field(boot, "state") != "PENDING_VERIFY":
                raise DemoError(f"expected v{NEW} booting PENDING_VERIFY, got: {boot}")
            if got != CONFIRMED:
                then = f"; then the bootloader booted: {sb.boots[2]}" if len(sb.boots) > 2 else ""
                raise DemoError(f"boot.py did not confirm v{NEW}: {got or 'no word in 30 s'}{then}")
            self.mpremote("exec", "import acupdate.repl; acupdate.repl.status()", what="status()")
            say("one more hard reset: a confirmed image stays (an unconfirmed one rolls back)")
            self.mpremote("reset", what="reset")
            if not sb.wait_boots(3):
                raise DemoError(f"the board did not come back after the reset: {sb.error}")
            final = sb.boots[2]
            say(final)
            if _field(final, "version") != NEW or _field(final, "state") != "VALID":
                raise DemoError(f"expected v{NEW} confirmed (state=VALID), got: {final}")
            print("\nslot table, read from the board's flash by the host:")
            print(board.state_table())

            step(None, "summary")
            print(
                f"summary: {old} -> {_field(final, 'version')}, {len(v2)} bytes, md5 {md5}, "
                f"update {t_up:.1f} s, demo {time.monotonic() - t0:.1f} s",
                flush=True,
            )
            if self.interactive:
                self.repl(url)
        return 0

    def sign(self, app: bytes) -> tuple[bytes, bytes]:
        """v2 signed by a key made now, and a copy of it with one bit of the app flipped."""
        step(None, "signing v2 with espsecure (Secure Boot V2, RSA-3072)")
        w = self.workdir
        (w / "app-unsigned.bin").write_bytes(app)
        key = str(w / "key.pem")
        espsecure("generate-signing-key", "--version", "2", "--scheme", "rsa3072", key)
        espsecure("digest-sbv2-public-key", "--keyfile", key, "--output", str(w / "key.digest"))
        say(f"key digest (what the board will trust): {(w / 'key.digest').read_bytes().hex()}")
        out = w / "app-signed.bin"
        espsecure("sign-data", "--version", "2", "--keyfile", key, "--output", str(out),
                  str(w / "app-unsigned.bin"))  # fmt: skip
        signed = out.read_bytes()
        tampered = bytearray(signed)
        tampered[len(app) // 2] ^= 0x01
        return signed, bytes(tampered)

    def refused(self) -> None:
        """The tampered copy offered first: refused, nothing bootable written, v1 runs on."""
        say(f"first {TAMPERED}: the board must refuse it")
        out = self.mpremote(
            "exec",
            f"import acupdate.repl; acupdate.repl.update({TAMPERED!r}, reboot=False)",
            what=f"update({TAMPERED!r})",
        )
        if "Signature Check Failed: image changed after signing" not in out:
            raise DemoError(f"update({TAMPERED!r}): the board did not refuse the tampered image")
        self.mpremote("exec", "import acupdate.repl; acupdate.repl.status()", what="status()")

    def repl(self, url: str) -> None:
        assert self.sb is not None
        step(None, "interactive: the board's REPL (mpremote); the server keeps running")
        say(f"update server: {url} (catalog: {self.workdir / 'catalog'})")
        say("try:  import acupdate.repl as r")
        say("      r.status();  r.ls();  r.update('app.bin')   (v2 already: 'No update')")
        say("      r.rollback(reset=True)   (back to v1, then r.update() again)")
        say("press Enter for the >>> prompt; leave with Ctrl-] (or Ctrl-X)")
        assert self.sb is not None
        subprocess.call([mpremote_exe(), "connect", self.sb.device, "repl"])


def _catalog(url: str) -> list:
    try:
        with urllib.request.urlopen(url + "_catalog?op=list&path=.", timeout=10) as r:
            return json.load(r)
    except (OSError, ValueError) as e:
        raise DemoError(f"the update server's catalog query failed: {e}") from None


def _field(boot_line: str, name: str) -> str:
    m = re.search(rf"\b{name}=(\S+)", boot_line)
    return m.group(1) if m else ""


def _parser(prog: str = "acupdate-demo") -> argparse.ArgumentParser:
    p = cli.Parser(
        prog=prog,
        description=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--interactive",
        action="store_true",
        help="at the end, stay at the board's REPL with the server running",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="keep the board, images and catalog here (default: a temporary folder, removed "
        "at the end)",
    )
    p.add_argument(
        "--signed",
        action="store_true",
        help="v2 signed with espsecure, the board trusting only that key; a tampered copy "
        "of v2 is refused first",
    )
    return p


def _main(args: argparse.Namespace) -> int:
    """The demo; a misuse (a --workdir that cannot be made, --interactive without a terminal)
    raises CLIError before it starts; a failed step is `demo failed: ...`, the board's last
    lines, exit status 1."""
    if args.interactive and not sys.stdin.isatty():
        raise cli.CLIError("--interactive needs a terminal (stdin is not one)")
    if args.workdir:
        try:
            args.workdir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise cli.CLIError(f"--workdir {args.workdir}: {e.strerror}") from None
    demo = None
    try:
        if args.workdir:
            demo = Demo(args.workdir, args.interactive, args.signed)
            return demo.run()
        with tempfile.TemporaryDirectory(prefix="acupdate-demo-") as tmp:
            demo = Demo(Path(tmp), args.interactive, args.signed)
            return demo.run()
    except (cli.CLIError, OSError) as e:
        print(f"\ndemo failed: {e}", file=sys.stderr)
        if demo is not None and demo.serial_log.data:
            print("last lines on the board's serial port:", file=sys.stderr)
            for line in demo.serial_log.text().splitlines()[-15:]:
                print(f"   serial | {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    prog = cli.prog("tools.demo", "acupdate-demo")
    return cli.run(prog, lambda: _main(_parser(prog).parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
