"""The device files as package data of the host package, for a non-editable install.

`pip install .` (or a wheel) copies device/acupdate, boot.py, main.py and package.json into
the installed package as tools/_device/, in the repository's layout, so that tools.deploy
and the demo find them there (tools.devicepkg.SOURCE). An editable install (`pip install
-e .`, what ./dev makes) copies nothing: the tools find the files in the source tree.
Everything else about the package is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# What the host tools read at run time, relative to the repository (= to tools/_device/).
DEVICE_FILES = ("device/acupdate", "boot.py", "main.py", "package.json")


class BuildPyWithDevice(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        dest = Path(self.build_lib) / "tools" / "_device"
        if dest.exists():  # an in-tree build/ kept from an earlier build: no stale module
            shutil.rmtree(dest)
        for rel in DEVICE_FILES:
            src = HERE / rel
            if src.is_dir():
                shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)


setup(cmdclass={"build_py": BuildPyWithDevice})
