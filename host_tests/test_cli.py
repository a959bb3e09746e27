"""The host programs' command lines (tools.cli): help text for every option and positional,
every misuse one line `PROG: error: ...` with exit status 2 and never a traceback, and the
program named as it was called (`acupdate-image` or `python -m tools.image`)."""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tools.board import __main__ as board
from tools.demo import __main__ as demo
from tools.deploy import __main__ as deploy
from tools.image import __main__ as image
from tools.server import __main__ as server

ROOT = Path(__file__).resolve().parent.parent
MAINS = {"board": board, "image": image, "server": server, "deploy": deploy, "demo": demo}
PARSERS = {  # each program's parser factory (module, name)
    "board": (board, "_parser"),
    "image": (image, "_parser"),
    "server": (server, "build_parser"),
    "server export": (server, "build_export_parser"),
    "deploy": (deploy, "_parser"),
    "deploy config": (deploy, "_config_parser"),
    "demo": (demo, "_parser"),
}
URL = "http://192.168.1.10:8000/"


def _walk(parser: argparse.ArgumentParser, name: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for sub, subparser in action.choices.items():
                yield f"{name} {sub}", "(the sub-command)", helps.get(sub)
                yield from _walk(subparser, f"{name} {sub}")
        else:
            yield name, "/".join(action.option_strings) or action.dest, action.help


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_option_and_positional_has_help_text(name):
    bare = [
        f"{where}: {what}"
        for where, what, text in _walk(getattr(*PARSERS[name])(), name)
        if not text or text == argparse.SUPPRESS
    ]
    assert bare == []


# (program, arguments, what the error line says). Placeholders: {dir} a folder, {file} a
# plain file, {missing} a path that is not there, {busy} a TCP port in use on 127.0.0.1.
MISUSES = [
    ("board", ["frobnicate"], "argument cmd: invalid choice: 'frobnicate'"),
    ("board", ["create"], "the following arguments are required: dir"),
    ("board", ["create", "{missing}", "--wifi", "nocolon"], "expected SSID:KEY, got 'nocolon'"),
    ("board", ["create", "{missing}", "--image", "{missing}"], "--image: no readable file"),
    ("board", ["create", "{missing}", "--chip", "esp99"], "unknown chip 'esp99'"),
    ("board", ["create", "{file}"], "cannot create"),
    ("board", ["run", "{dir}", "--heap", "10"], "--heap: expected a size such as 48K"),
    ("board", ["run", "{dir}", "--script", "{missing}"], "--script: no readable file"),
    ("board", ["run", "{missing}", "-c", "print(1)"], "is not a board (no board.json)"),
    ("board", ["serve", "{missing}"], "is not a board (no board.json)"),
    ("board", ["state", "{dir}"], "is not a board (no board.json)"),
    ("image", [], "the following arguments are required: COMMAND"),
    ("image", ["build"], "the following arguments are required: -o/--output"),
    ("image", ["build", "-o", "{missing}", "--size", "lots"], "size 'lots' not understood"),
    ("image", ["build", "-o", "{missing}", "--size", "100M"], "out of range"),
    ("image", ["build", "-o", "{missing}", "--chip", "esp99"], "unknown chip 'esp99'"),
    ("image", ["build", "-o", "{missing}", "--seed", "x"], "--seed: invalid int value"),
    ("image", ["build", "-o", "{missing}/x.bin"], "cannot write"),
    ("image", ["merged", "-o", "{missing}", "--app", "{missing}"], "cannot read"),
    ("image", ["inspect", "{missing}"], "cannot read"),
    ("server", ["--port", "abc"], "expected a TCP port number, got 'abc'"),
    ("server", ["--port", "99999"], "port 99999 is not between 0 and 65535"),
    ("server", ["-b", "127.0.0.1", "-p", "{busy}", "-d", "{dir}"], "in use"),
    ("server", ["-b", "8.8.8.8", "-p", "0", "-d", "{dir}"], "not an address of this machine"),
    ("server", ["-d", "{missing}"], "does not exist"),
    ("server", ["-d", "{file}"], "is not a folder"),
    ("server", ["--max-clients", "0"], "--max-clients: expected at least 1"),
    ("server", ["--timeout", "0"], "--timeout: expected more than 0 seconds"),
    ("server", ["--head-timeout", "-1"], "--head-timeout: expected more than 0 seconds"),
    ("server", ["--log", "LOUD"], "'LOUD' is not one of DEBUG"),
    ("server", ["-d", "{dir}", "--cert", "{missing}", "--key", "{missing}"], "does not exist"),
    ("server", ["-d", "{dir}", "--key", "{file}"], "needs both a certificate"),
    ("server", ["-d", "{dir}", "--user", "u"], "needs both a user name and a password"),
    ("server", ["--user", "u", "--password-file", "{missing}"], "cannot read --password-file"),
    ("server", ["export", "--out", "{missing}"], "required: -d/--catalog"),
    ("server", ["export", "-d", "{missing}", "--out", "{missing}"], "is not a folder"),
    ("deploy", ["--device", "{missing}", "--server", URL], "(is the board plugged in?"),
    ("deploy", ["--device", "{file}", "--server", URL], "is not a serial port"),
    ("deploy", ["--dry-run", "--build-dir", "{file}/x"], "--build-dir"),
    ("deploy", ["--wifi-ssid", "lab", "--wifi-key", "secret"], "--wifi-key must be 8 to 63"),
    ("deploy", ["--server", "ftp://h/"], "the board speaks http:// and https:// only"),
    ("deploy", ["--led", "x"], "argument --led: invalid int value: 'x'"),
    ("deploy", ["--led-active", "3"], "argument --led-active: invalid choice"),
    ("deploy", ["--server", URL, "--timeout", "-1"], "--timeout must be more than 0"),
    ("deploy", ["--server", "https://h/", "--ca", "{missing}"], "no such file"),
    ("deploy", ["--trust-digest", "zz"], "give the key digest as 64 hex digits"),
    ("deploy", ["--config-only"], "--config-only needs settings options"),
    ("deploy", ["config", "--bogus"], "unrecognized arguments: --bogus"),
    ("deploy", ["config", "--server", URL, "-o", "{missing}/x.json"], "cannot write"),
    ("demo", ["--bogus"], "unrecognized arguments: --bogus"),
    ("demo", ["--workdir", "{file}/x"], "--workdir"),
    ("demo", ["--interactive"], "--interactive needs a terminal"),
]


@pytest.fixture
def places(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("not a board, an image, a key or a folder\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        yield {
            "dir": str(tmp_path / "dir"),
            "file": str(tmp_path / "file"),
            "missing": str(tmp_path / "missing"),
            "busy": str(busy.getsockname()[1]),
        }


@pytest.mark.parametrize(
    "program,args,says", MISUSES, ids=[f"{p} {' '.join(a)}" for p, a, _ in MISUSES]
)
def test_a_misuse_is_one_error_line_and_exit_2(program, args, says, places, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [f"/x/{program}/__main__.py"])  # as python -m runs it
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    rc = MAINS[program].main([a.format(**places) for a in args])
    out, err = capsys.readouterr()
    assert rc == 2, out + err
    assert "Traceback" not in err
    lines = err.rstrip("\n").split("\n")
    usage = [i for i, line in enumerate(lines) if line.startswith("usage: ")]
    # Only argparse's usage (its first line and the continuation lines) above the error.
    body = lines[usage[0] + 1 : -1] if usage else lines[:-1]
    assert all(line.startswith(" ") for line in body), err
    error = lines[-1]
    assert re.match(rf"python -m tools\.{program}( \w+)?: error: ", error), err
    assert says in error, err


@pytest.mark.parametrize(
    "called,args,prog",
    [
        (["{bin}/acupdate-image"], ["build"], "acupdate-image build"),
        ([sys.executable, "-m", "tools.image"], ["build"], "python -m tools.image build"),
        (["{bin}/acupdate-deploy"], ["--led", "x"], "acupdate-deploy"),
        ([sys.executable, "-m", "tools.server"], ["export"], "python -m tools.server export"),
        (["{bin}/acupdate-board"], ["state", "/nonexistent"], "acupdate-board"),
        (["{bin}/acupdate-demo"], ["--bogus"], "acupdate-demo"),
    ],
)
def test_the_program_is_named_as_it_was_called(called, args, prog, tmp_path):
    argv = [c.format(bin=Path(sys.executable).parent) for c in called] + args
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 2
    assert res.stderr.rstrip().split("\n")[-1].startswith(f"{prog}: error: "), res.stderr
    if res.stderr.startswith("usage: "):
        assert res.stderr.startswith(f"usage: {prog} "), res.stderr
    helped = subprocess.run(
        argv[: len(called)] + ["--help"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert helped.returncode == 0 and helped.stdout.startswith(f"usage: {prog.split(' ')[0]}")
