"""The README's demo command, run exactly as a new user runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_demo_command_succeeds_and_ends_with_v2_confirmed():
    readme = (ROOT / "README.md").read_text()
    assert "./dev demo" in readme
    res = subprocess.run(["./dev", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "slot=ota_1 version=2.0.0 project=acupdate-demo state=VALID" in res.stdout
    assert "summary: 1.0.0 -> 2.0.0" in res.stdout
