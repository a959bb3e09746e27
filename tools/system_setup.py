"""The Debian packages the test suite runs besides Python's: `nginx` (the fleet tests serve an
export with it) and `chromium` (the browser tests drive it with Playwright).

    python -m tools.system_setup            install what is missing with apt-get (as root)
    python -m tools.system_setup --check    only report; exit 1 when something is missing

`./dev test` runs it before pytest. When every program is there it only looks at the files
(no apt-get, no network). Otherwise it needs root (as in CI); a user who is not root is told
the one apt-get command to run. Exit status: 0 ready, 1 something is missing, 2 usage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import NamedTuple


class Package(NamedTuple):
    name: str  # the Debian package
    program: str  # the file it must provide
    why: str


PACKAGES = (
    Package("nginx", "/usr/sbin/nginx", "the fleet tests serve an export with it"),
    Package("chromium", "/usr/bin/chromium", "the browser tests drive it with Playwright"),
)
APT_TIMEOUT = 1200  # seconds for one apt-get run (chromium is large)


class SetupError(Exception):
    """A package is missing and cannot be installed here; the message says what to do."""


def missing(packages: Sequence[Package] = PACKAGES) -> list[Package]:
    return [p for p in packages if not os.access(p.program, os.X_OK)]


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        return subprocess.run(
            ["apt-get", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=APT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SetupError(f"apt-get {' '.join(args)} took more than {APT_TIMEOUT} s") from None


def install(packages: Sequence[Package] = PACKAGES) -> list[Package]:
    """Install the packages whose program is missing; returns those it installed.

    `apt-get install` first; when it fails (an empty or old package list), `apt-get
    update` then `apt-get install` again."""
    todo = missing(packages)
    if not todo:
        return []
    names = [p.name for p in todo]
    command = "apt-get install -y " + " ".join(names)
    if shutil.which("apt-get") is None:
        raise SetupError(f"{', '.join(p.program for p in todo)} missing and no apt-get here")
    if os.geteuid() != 0:
        raise SetupError(
            "missing: "
            + "; ".join(f"{p.program} ({p.why})" for p in todo)
            + f". Run `sudo {command}` once, then ./dev test again"
        )
    done = _apt("install", "-y", *names)
    if done.returncode != 0:
        update = _apt("update")
        if update.returncode != 0:
            raise SetupError("apt-get update failed:\n" + update.stderr[-2000:])
        done = _apt("install", "-y", *names)
    still = missing(todo)
    if done.returncode != 0 or still:
        raise SetupError(
            f"{command} failed (exit {done.returncode}"
            + (f"; still missing: {', '.join(p.program for p in still)}" if still else "")
            + f"):\n{done.stderr[-2000:]}"
        )
    return todo


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.system_setup",
        description="Install the Debian packages the tests need (nginx, chromium) when missing.",
    )
    parser.add_argument(
        "--check", action="store_true", help="only report; exit 1 when something is missing"
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        if args.check:
            absent = missing()
            if absent:
                raise SetupError("missing: " + ", ".join(p.program for p in absent))
            installed = []
        else:
            installed = install()
    except SetupError as err:
        print(f"system_setup: {err}", file=sys.stderr)
        return 1
    for p in PACKAGES:
        state = "installed now" if p in installed else "present"
        print(f"system_setup: {p.name}: {p.program} {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
