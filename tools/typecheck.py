"""Type-check the device code against the ESP32 port's API (micropython-esp32-stubs).

The stubs are laid out as a typeshed of their own: MicroPython's stdlib stubs stand in
for CPython's, so a call the ESP32 firmware does not have is an error here.

  python -m tools.typecheck [PATH ...]     (default: device/acupdate boot.py main.py)
"""

from __future__ import annotations

import importlib.metadata as md
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ["device/acupdate", "boot.py", "main.py"]  # (device/manifest.py is the firmware build's)


class TypecheckError(Exception):
    pass


def stub_tree(dest: Path) -> None:
    """Lay out dest as a typeshed: MicroPython's stdlib stubs under stdlib/, the ESP32
    port's modules (and the stubs' shared helpers) under mods/ for MYPYPATH."""
    for dist in ("micropython-esp32-stubs", "micropython-stdlib-stubs"):
        try:
            files = md.distribution(dist).files or []
        except md.PackageNotFoundError as e:
            raise TypecheckError(f"{dist} is not installed: run ./dev test") from e
        for f in files:
            name = str(f)
            if not (name.endswith(".pyi") or name.endswith("VERSIONS")):
                continue
            typeshed = name.startswith(("stdlib/", "stubs/"))
            target = dest / name if typeshed else dest / "mods" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f.locate(), target)


def main(argv=None) -> int:
    paths = (argv if argv is not None else sys.argv[1:]) or [
        p for p in DEFAULT if (ROOT / p).exists()
    ]
    if not paths:
        print("typecheck: no device code yet")
        return 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stub_tree(Path(tmp))
            cmd = [
                sys.executable,
                "-m",
                "mypy",
                "--custom-typeshed-dir",
                tmp,
                "--python-version",
                "3.11",
                "--no-site-packages",
                "--no-error-summary",
                "--follow-imports=silent",
                "--cache-dir",
                str(Path(tmp) / "cache"),
                *paths,
            ]
            env_path = str(Path(tmp) / "mods")
            import os

            env = dict(os.environ, MYPYPATH=env_path)
            res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            # The stubs have faults of their own; only what they say of our code counts.
            ours = [ln for ln in res.stdout.splitlines() if not ln.startswith(tmp)]
            errors = [ln for ln in ours if ": error:" in ln]
            print("\n".join(ours) if ours else "", end="\n" if ours else "")
            if res.returncode not in (0, 1) or (res.returncode and not res.stdout):
                raise TypecheckError(f"mypy failed: {res.stderr.strip()}")
            if errors:
                print(f"typecheck: {len(errors)} error(s) against micropython-esp32-stubs")
                return 1
            print(f"typecheck: {', '.join(paths)} agree with micropython-esp32-stubs")
            return 0
    except TypecheckError as e:
        print(f"typecheck: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
