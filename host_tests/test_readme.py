"""README.md as an executable contract: every command of its `sh` blocks, run as written.

The rule (README, "How README is tested"): each command runs in bash, in README's order,
from a scratch folder holding the repository's files (linked) and the files a user brings
(firmware.bin, ca.pem, c.pem, k.pem); /dev/ttyUSB0 becomes the pty of a simulated board
(tools.board serve) and the update server's address (every http:// and https:// URL's host
and port, and the port 8000 the server commands listen on) one free port of 127.0.0.1, where
README's own server commands serve. A command in SERVING runs until the end of its block,
then gets Ctrl-C and must exit 0; a command in SKIPPED is not run, for the reason given;
every other command must exit 0 without a traceback. The lists are checked against README
both ways: a command README no longer has, or one the test would leave out silently, fails.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faults import make_certs

from tools.board import Board
from tools.image import build_app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEVICE = "/dev/ttyUSB0"
PORT = "8000"  # the port README's servers listen on

# Commands not run, each with its reason (as written in README, comment left out).
SKIPPED = {
    "./dev test": "the test suite itself, this test among them: CI runs it (.ci/run)",
    ".venv/bin/python -m tools.board repl myboard": "interactive: mpremote's REPL wants a "
    "person at a terminal (the same board's REPL is driven through `serve` below)",
}

# Commands that serve until Ctrl-C, and what says they are up: "port" (the substituted 8000
# takes a connection) or a file that appears.
SERVING = {
    ".venv/bin/python -m tools.server --catalog firmware/ --port 8000": "port",
    ".venv/bin/python -m tools.server --catalog firmware/ --port 8000 --cert c.pem --key k.pem "
    "--user board --password s3cret --sha256": "port",
    'nginx -c "$PWD/site/nginx/nginx.conf"': "port",
    "python3 -m http.server 8000 --directory site/www": "port",
    ".venv/bin/python -m tools.board serve myboard": "myboard/tty",
    ".venv/bin/python -m tools.board serve lab": "lab/tty",
}


def blocks() -> list[list[str]]:
    """README's sh blocks, each a list of commands: continuation lines joined, comment lines
    and trailing comments left out."""
    out = []
    for body in re.findall(r"^```sh\n(.*?)^```", README.read_text(), re.S | re.M):
        commands: list[str] = []
        pending = ""
        for line in body.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            command = re.sub(r"\s+#\s.*$", "", pending + line.strip()).strip()
            shlex.split(command)  # a trailing comment cut inside quotes would fail here
            commands.append(command)
            pending = ""
        assert not pending, f"a README command ends with a backslash: {pending}"
        out.append(commands)
    return out


def test_the_lists_of_skipped_and_serving_commands_are_exact():
    commands = [c for block in blocks() for c in block]
    assert "How README is tested" in README.read_text()
    assert sorted({c for c in commands if c in SKIPPED}) == sorted(SKIPPED)
    assert sorted({c for c in commands if c in SERVING}) == sorted(SERVING)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    """The environment of a new user's shell: no venv on PATH (README says .venv/bin/...)."""
    venv_bins = {str(Path(sys.executable).parent), str(ROOT / ".venv" / "bin")}
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    path = os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in path if p and p not in venv_bins)
    return env


class Rule:
    """The one substitution: the serial device and the update server's address."""

    def __init__(self, pty: str, port: int) -> None:
        self.pty, self.port = pty, port

    def __call__(self, command: str) -> str:
        command = command.replace(DEVICE, self.pty)
        command = re.sub(r"\b(https?)://[^/\s\"']+", rf"\1://127.0.0.1:{self.port}", command)
        return re.sub(rf"(?<![\w:.]){PORT}(?![\w.])", str(self.port), command)


@pytest.fixture
def scratch(tmp_path, image_v1, image_v2):
    """The folder README's commands run in: the repository's files, linked, and the files a
    user brings."""
    work = tmp_path / "work"
    work.mkdir()
    for entry in ROOT.iterdir():
        if entry.name in (".git", "build") or entry.name.endswith(".egg-info"):
            continue
        if entry.name.startswith(".") and entry.name != ".venv":
            continue
        (work / entry.name).symlink_to(entry)
    (work / "firmware.bin").write_bytes(build_app(version="2.0.0", size=64 * 1024, seed=5))
    (tmp_path / "pki").mkdir()
    certs = make_certs(tmp_path / "pki")
    shutil.copy(certs["ca.pem"], work / "ca.pem")
    shutil.copy(certs["server.pem"], work / "c.pem")
    shutil.copy(certs["server.key"], work / "k.pem")
    return work


@pytest.fixture
def rule(scratch, tmp_path, image_v1):
    """The substitution's targets: a simulated board served on a pty for the whole test, and
    a free port for the update server's address."""
    Board.create(tmp_path / "board", image_v1)
    serve = subprocess.Popen(
        [sys.executable, "-m", "tools.board", "serve", str(tmp_path / "board")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline()
        found = re.match(r"board serial port: (/dev/\S+)", first)
        assert found, first
        yield Rule(found[1], _free_port())
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        serve.wait(timeout=30)


def _wait_until(up: Callable[[], bool], proc: subprocess.Popen, timeout: float = 30) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if up():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(text: str, n: int = 40) -> str:
    return "\n".join(text.splitlines()[-n:])


def test_every_readme_command_works_as_written(scratch, rule, tmp_path):
    env = _env()
    ran = 0
    for block in blocks():
        serving: list[tuple[str, subprocess.Popen, Path]] = []
        try:
            for command in block:
                if command in SKIPPED:
                    continue
                argv = ["bash", "-o", "pipefail", "-c", rule(command)]
                where = f"README command: {command}\nas run: {rule(command)}"
                ran += 1
                print(f"\n$ {rule(command)}", flush=True)
                if command in SERVING:
                    log = tmp_path / f"serving-{len(serving)}-{ran}.log"
                    with open(log, "wb") as out:
                        proc = subprocess.Popen(
                            argv,
                            cwd=scratch,
                            env=env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    serving.append((command, proc, log))
                    ready = SERVING[command]
                    up = (
                        (lambda: _port_open(rule.port))
                        if ready == "port"
                        else (lambda ready=ready: (scratch / ready).exists())
                    )
                    assert _wait_until(up, proc), f"{where}\nnot up:\n{_tail(log.read_text())}"
                    continue
                t0 = time.monotonic()
                res = subprocess.run(
                    argv,
                    cwd=scratch,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    stdin=subprocess.DEVNULL,
                )
                out = res.stdout + res.stderr
                print(f"  ({time.monotonic() - t0:.1f} s, exit {res.returncode})", flush=True)
                assert res.returncode == 0, f"{where}\nexit {res.returncode}:\n{_tail(out)}"
                assert "Traceback (most recent call last)" not in out, f"{where}\n{out}"
        finally:
            stopped = []
            for command, proc, log in reversed(serving):  # Ctrl-C, as a person stops it
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGINT)
                try:
                    rc = proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    rc = proc.wait()
                stopped.append((command, rc, log))
        for command, rc, log in stopped:
            assert rc == 0, f"README command: {command}\nafter Ctrl-C, exit {rc}:\n" + _tail(
                log.read_text()
            )
    assert ran == sum(len(b) for b in blocks()) - len(SKIPPED)
