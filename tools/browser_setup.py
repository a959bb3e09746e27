"""Headless Chromium for the browser tests: Debian's `chromium` package, driven by Playwright
for Python through `executable_path` (Playwright's own browser downloads are not used: they
are not reachable from these machines).

    python -m tools.browser_setup            install chromium with apt-get when it is missing
    python -m tools.browser_setup --check    only report what is there (exit 1 if not ready)

The tests call ensure_chromium() and launch() themselves; CI runs as root, so apt-get works.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class BrowserSetupError(Exception):
    """Chromium or Playwright is missing and cannot be installed; the message says why."""


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(
        ["apt-get", *args], capture_output=True, text=True, env=env, timeout=900, check=False
    )


def ensure_chromium(path: str = CHROMIUM) -> str:
    """The Chromium executable; apt-get installs Debian's `chromium` first when it is missing
    (with `apt-get update` when the first try fails)."""
    if os.access(path, os.X_OK):
        return path
    if shutil.which("apt-get") is None:
        raise BrowserSetupError(f"{path} is missing and there is no apt-get to install chromium")
    if os.geteuid() != 0:
        raise BrowserSetupError(f"{path} is missing: run `sudo apt-get install -y chromium`")
    p = _apt("install", "-y", "chromium")
    if p.returncode != 0:
        u = _apt("update")
        if u.returncode != 0:
            raise BrowserSetupError("apt-get update failed:\n" + u.stderr[-2000:])
        p = _apt("install", "-y", "chromium")
    if p.returncode != 0 or not os.access(path, os.X_OK):
        raise BrowserSetupError(
            f"apt-get install chromium failed (exit {p.returncode}):\n{p.stderr[-2000:]}"
        )
    return path


def playwright_version() -> str:
    """The installed Playwright for Python's version (BrowserSetupError when missing)."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - python < 3.8
        raise BrowserSetupError("python too old for importlib.metadata") from None
    try:
        return version("playwright")
    except PackageNotFoundError:
        raise BrowserSetupError(
            "the Python package playwright is missing: pip install the version pinned in "
            "pyproject.toml (its own browsers are not needed: the tests use Debian's chromium)"
        ) from None


def launch(playwright: Any, path: str = CHROMIUM) -> Any:
    """A headless Chromium Browser from a started sync Playwright."""
    return playwright.chromium.launch(
        executable_path=ensure_chromium(path), args=list(ARGS), headless=True
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.browser_setup",
        description="Make headless Chromium ready for the browser tests: Debian's chromium "
        "package (installed with apt-get when missing) driven by Playwright for Python.",
    )
    ap.add_argument(
        "--check", action="store_true", help="only report; exit 1 when something is missing"
    )
    ap.add_argument("--chromium", default=CHROMIUM, help="Chromium executable (%(default)s)")
    args = ap.parse_args(argv)
    try:
        if args.check and not os.access(args.chromium, os.X_OK):
            raise BrowserSetupError(f"{args.chromium} is missing")
        exe = ensure_chromium(args.chromium)
        version = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=60, check=False
        ).stdout.strip()
        print(f"chromium: {exe} ({version or 'version unknown'})")
        print(f"playwright: {playwright_version()}")
    except BrowserSetupError as e:
        print(f"browser_setup: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
