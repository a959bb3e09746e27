"""What the acupdate host programs share, in mpremote's shape.

Each program (tools.board, tools.image, tools.server, tools.deploy, tools.demo) is a package
with a __main__ whose main(argv) returns an exit code, and catches one error type at the
top, CLIError (each program's own error type is one). run() does that catch:

  - a misuse (a bad option value, a missing file, a port or folder that cannot be used) is
    one line on stderr, `PROG: error: MESSAGE`, and exit status 2, as argparse's own usage
    errors (Parser prints its usage line(s) above them);
  - a failure of the work itself (a board that does not answer, a demo step) has the same
    line with exit status 1.

PROG is the program's name as it was called: `acupdate-image` for the console script,
`python -m tools.image` otherwise (host_tests/test_cli.py checks all of it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn


class CLIError(Exception):
    """The program cannot go on; the message (one line) says why and what to do."""

    exit_code = 2  # a misuse; 1 for the failure of the work (subclasses say)


class UsageError(CLIError):
    """argparse refused the command line (of the sub-command `prog`, when it has one)."""

    def __init__(self, message: str, prog: str | None = None) -> None:
        super().__init__(message)
        self.prog = prog


def prog(module: str, script: str) -> str:
    """The program's name as it was called: `script` (acupdate-image) when that console
    script runs, else `python -m module`."""
    return script if Path(sys.argv[0]).name == script else f"python -m {module}"


class Parser(argparse.ArgumentParser):
    """argparse, its usage errors raised as UsageError (run() prints them, exit 2) instead of
    exiting from inside parse_args(), so that main() returns an exit code. --help prints and
    exits 0 as usual."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message, prog=self.prog)


def run(prog_name: str, body: Callable[[], int]) -> int:
    """body()'s exit code; a CLIError is one line, `PROG: error: MESSAGE`, and its exit code."""
    try:
        return body()
    except CLIError as e:
        name = e.prog if isinstance(e, UsageError) and e.prog else prog_name
        print(f"{name}: error: {e}", file=sys.stderr)
        return e.exit_code
    except SystemExit as e:  # --help, --version: argparse's exit
        return e.code if isinstance(e.code, int) else 0


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number of seconds more than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected more than 0 seconds, got {text}")
    return value
