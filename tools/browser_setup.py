"""Headless Chromium for the browser tests: Debian's `chromium` package, driven by Playwright
for Python through `executable_path` (Playwright's own browser downloads are not used: they
are not reachable from these machines).

    python -m tools.browser_setup            report what is there (exit 1 if not ready)

`./dev test` installs the package first (tools.system_setup, apt-get as root); the tests
call ensure_chromium() and launch(), which only look for it.
"""

from __future__ import annotations

import argparse
import os
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


def ensure_chromium(path: str = CHROMIUM) -> str:
    """The Chromium executable (BrowserSetupError when it is missing: ./dev test's setup step,
    python -m tools.system_setup, installs it)."""
    if os.access(path, os.X_OK):
        return path
    raise BrowserSetupError(
        f"{path} is missing: ./dev test installs it (python -m tools.system_setup, as root; "
        "or `sudo apt-get install -y chromium`)"
    )


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
        description="Report whether headless Chromium is ready for the browser tests: Debian's "
        "chromium package (python -m tools.system_setup installs it) and Playwright for Python.",
    )
    ap.add_argument("--chromium", default=CHROMIUM, help="Chromium executable (%(default)s)")
    args = ap.parse_args(argv)
    try:
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
