"""Compile the agent with mpy-cross and copy it to a board with mpremote.

On the board:  /lib/acupdate/*.mpy (or *.py with source=True), /boot.py, /main.py,
/acupdate.json and the files the settings name (a CA certificate, /ca.pem or /ca.der).
/lib/acupdate is emptied first, so that no stale module is left behind (a stale .py
would even shadow the new .mpy: MicroPython imports .py first).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools import devicepkg

from .errors import DeployError

PACKAGE = devicepkg.PACKAGE
STARTUP_FILES = devicepkg.STARTUP_FILES
# The compiled modules: build/deploy in a checkout; installed, in the temporary folder (a
# site-packages folder is no place to write).
BUILD = (
    Path(tempfile.gettempdir()) / f"acupdate-deploy-{os.getuid()}"
    if devicepkg.INSTALLED
    else devicepkg.ROOT / "build" / "deploy"
)
BOARD_PKG = "/lib/acupdate"
BOARD_CONFIG = "/acupdate.json"
MPREMOTE_TIMEOUT = 300  # seconds for the whole copy

# Run on the board before the copy: make /lib, remove /lib/acupdate and all it holds (the
# copy makes it again).
PREPARE = """\
import os
def _rm(p):
    if os.stat(p)[0] & 0x4000:
        for n in os.listdir(p):
            _rm(p + '/' + n)
        os.rmdir(p)
    else:
        os.remove(p)
try:
    os.mkdir('/lib')
except OSError:
    pass
try:
    _rm('/lib/acupdate')
except OSError:
    pass
"""

# Run on the board after the copy: what is there now, and does the package import?
VERIFY = """\
import os, sys, json
def _size(p):
    try:
        return os.stat(p)[6]
    except OSError:
        return -1
_r = {'files': {}, 'config': None, 'module': None}
def _walk(d, deep):
    try:
        names = os.listdir(d)
    except OSError:
        return
    for _n in names:
        _p = d.rstrip('/') + '/' + _n
        if deep and os.stat(_p)[0] & 0x4000:
            _walk(_p, deep)
        else:
            _r['files'][_p] = _size(_p)
_walk('/lib/acupdate', True)
_walk('/', False)
try:
    with open('/acupdate.json') as _f:
        _r['config'] = json.load(_f)
except (OSError, ValueError) as _e:
    _r['config'] = repr(_e)
for _k in list(sys.modules):
    if _k == 'acupdate' or _k.startswith('acupdate.'):
        del sys.modules[_k]
try:
    import acupdate.config
    _r['module'] = acupdate.config.__file__
except Exception as _e:
    _r['module'] = repr(_e)
print('@@DEPLOY@@' + json.dumps(_r))
"""
MARK = "@@DEPLOY@@"


def tool(name: str) -> str:
    """A host tool installed next to this Python (the venv's), else on PATH."""
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        raise DeployError(f"{name} is not installed: pip install {name}")
    return found


def compile_package(out: Path, *, source: bool = False, package: Path = PACKAGE) -> list[Path]:
    """Put the agent's modules under `out` (out/acupdate/..., emptied first): .mpy via
    mpy-cross (tools.devicepkg), or the .py with source=True."""
    try:
        return devicepkg.build(out, mpy=not source, package=package)
    except devicepkg.BuildError as e:
        raise DeployError(str(e)) from None


def mpremote_base(device: str | None) -> list[str]:
    """mpremote, connected to `device`; None or 'auto': mpremote finds the board itself."""
    cmd = [tool("mpremote")]
    if device and device != "auto":
        cmd += ["connect", device]
    return cmd


def chain(*commands: list[str]) -> list[str]:
    """mpremote's command chaining: a + b + c in one session."""
    out: list[str] = []
    for c in commands:
        if out:
            out.append("+")
        out += c
    return out


@dataclass
class Plan:
    """What a deploy copies: modules (host paths), config text (or None), flags, and the
    files the config names ((host path, board path) pairs, e.g. the CA certificate)."""

    modules: list[Path]
    config_file: Path | None
    startup: bool
    reset: bool
    files: list[tuple[Path, str]] = field(default_factory=list)
    root: Path | None = None  # the host folder that becomes BOARD_PKG (else modules are flat)

    def board_path(self, module: Path) -> str:
        """Where `module` lands on the board."""
        rel = module.relative_to(self.root).as_posix() if self.root else module.name
        return f"{BOARD_PKG}/{rel}"

    def commands(self) -> list[list[str]]:
        steps: list[list[str]] = []
        if self.modules:
            if self.root is None:
                raise DeployError("the modules' folder is not known: nothing to copy")
            steps.append(["exec", PREPARE])
            steps.append(["cp", "-r", str(self.root), f":{BOARD_PKG.rsplit('/', 1)[0]}/"])
        if self.startup:
            for f in STARTUP_FILES:
                steps.append(["cp", str(f), f":/{f.name}"])
        # The files before the settings that name them: a copy that stops halfway does not
        # leave settings that point at a missing file.
        for src, dest in self.files:
            steps.append(["cp", str(src), f":{dest}"])
        if self.config_file is not None:
            steps.append(["cp", str(self.config_file), f":{BOARD_CONFIG}"])
        steps.append(["exec", VERIFY])
        return steps


def describe(argv: list[str]) -> str:
    """A readable rendering of a command: its scripts named."""
    shown: list[str] = []
    for a in argv:
        if a == PREPARE:
            a = "<remove /lib/acupdate>"
        elif a == VERIFY:
            a = "<list the files, read /acupdate.json, import acupdate.config>"
        shown.append(a if a and " " not in a and "'" not in a else repr(a))
    return " ".join(shown)


def run_mpremote(argv: list[str], timeout: float = MPREMOTE_TIMEOUT) -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeployError(
            f"mpremote did not finish within {timeout:g} s: {describe(argv)}"
        ) from None
    if res.returncode:
        out = (res.stdout + res.stderr).strip()
        if "no device found" in out:
            out += "\n(connect a board, or name its serial port with --device, e.g. /dev/ttyUSB0)"
        raise DeployError(f"mpremote failed (exit {res.returncode}):\n{out}")
    return res.stdout


INTERRUPT_S = 30  # how long interrupt() keeps at it


def interrupt(device: str, within: float = INTERRUPT_S) -> bool:
    """Stop what the board runs (a slow or stuck boot.py, main.py, a program) with Ctrl-C,
    sent every 0.1 s until the board's REPL prompt answers a line; False when `device`
    cannot be opened. DeployError when the board never answers."""
    import serial  # pyserial, which mpremote uses

    try:
        port = serial.Serial(device, 115200, timeout=0.1)
    except (OSError, serial.SerialException):
        return False  # no board there: mpremote says so in its words
    seen = b""
    end = time.monotonic() + within
    try:
        while time.monotonic() < end:
            port.write(b"\x03\x02")  # Ctrl-C, and Ctrl-B out of a raw REPL left behind
            seen = (seen + port.read(4096))[-4096:]
            if seen.endswith(b">>> "):
                port.write(b"\r")  # a prompt for an empty line too: the REPL is idle
                more = port.read_until(b">>> ", 4096)
                if more.endswith(b">>> "):
                    return True
    finally:
        port.close()
    raise DeployError(
        f"the board on {device} did not stop for Ctrl-C within {within:g} s "
        f"(last output: {seen[-200:]!r}); press its reset button and try again"
    )


def check_board(report: dict, plan: Plan, config: dict | None) -> list[str]:
    """Compare what the board reports with what was copied; returns problems."""
    problems = []
    files = report.get("files", {})
    for m in plan.modules:
        where = plan.board_path(m)
        want = m.stat().st_size
        if files.get(where) != want:
            problems.append(
                f"{where}: {files.get(where, 'missing')} bytes on the board, {want} here"
            )
    extra = sorted(
        p
        for p in files
        if p.startswith(BOARD_PKG + "/") and p not in {plan.board_path(m) for m in plan.modules}
    )
    if plan.modules and extra:
        problems.append(f"stale files left in {BOARD_PKG}: {', '.join(extra)}")
    if plan.startup:
        for f in STARTUP_FILES:
            if files.get(f"/{f.name}") != f.stat().st_size:
                problems.append(f"/{f.name} on the board differs from {f}")
    if plan.modules:
        module = f"{BOARD_PKG}/config.{plan.modules[0].suffix[1:]}"
        if report.get("module") != module:
            problems.append(f"acupdate.config imports from {report.get('module')}, not {module}")
    for src, dest in plan.files:
        size = src.stat().st_size
        if files.get(dest) != size:
            problems.append(f"{dest}: {files.get(dest, 'missing')} bytes on the board, {size} here")
    if config is not None and report.get("config") != config:
        problems.append(f"{BOARD_CONFIG} on the board reads {report.get('config')!r}")
    return problems


def deploy(
    device: str | None,
    config: dict | None,
    config_text: str | None,
    *,
    build: Path = BUILD,
    source: bool = False,
    config_only: bool = False,
    reset: bool = False,
    dry_run: bool = False,
    files: Sequence[tuple[Path, str]] = (),
    log=print,
) -> dict:
    """Build, copy, verify. Returns the board's report (files with sizes, config).
    `files`: (host path, board path) pairs copied with the config (settings.files)."""
    modules: list[Path] = []
    if not config_only:
        modules = compile_package(build / "lib", source=source)
        total = sum(m.stat().st_size for m in modules)
        kind = ".py (source)" if source else ".mpy (mpy-cross)"
        log(f"built {len(modules)} modules as {kind}, {total} bytes, in {build / 'lib'}")
    config_file = None
    if config_text is not None:
        build.mkdir(parents=True, exist_ok=True)
        config_file = build / "acupdate.json"
        config_file.write_text(config_text)
    plan = Plan(
        modules,
        config_file,
        startup=not config_only,
        reset=reset,
        files=list(files),
        root=build / "lib" / "acupdate",
    )
    steps = chain(*plan.commands())
    if device and device != "auto" and not dry_run:
        # mpremote soft-resets the board when it connects, which runs boot.py again: a slow
        # one (a Wi-Fi wait) or a stuck one keeps mpremote out ("could not enter raw repl";
        # on a pty, no answer at all). So stop what the board runs first, and copy in that
        # same life of the board, without the soft reset (mpremote resume).
        if interrupt(device):
            log("interrupted what the board ran (Ctrl-C); copying without a soft reset")
            steps = ["resume", *steps]
    argv = mpremote_base(device) + steps
    if reset:
        argv += ["+", "reset"]
    log(f"$ {describe(argv)}")
    if dry_run:
        return {}
    out = run_mpremote(argv)
    line = next((ln for ln in out.splitlines() if ln.startswith(MARK)), None)
    if line is None:
        raise DeployError(f"the board did not report back after the copy:\n{out.strip()}")
    report = json.loads(line[len(MARK) :])
    problems = check_board(report, plan, config)
    if problems:
        raise DeployError("the board does not hold what was copied:\n  " + "\n  ".join(problems))
    return report
