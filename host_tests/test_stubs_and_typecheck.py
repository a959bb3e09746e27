"""The board model offers only what the ESP32 port has, and the type check can fail."""

from __future__ import annotations

import ast
import importlib.metadata as md
import subprocess
import sys
from pathlib import Path

import pytest

MPY = Path(__file__).resolve().parent.parent / "tools" / "board" / "mpy"


def stub_names(module: str) -> dict[str, set[str]]:
    """Public names of an ESP32 stub module: {"": top level, "Class": its members}."""
    files = md.distribution("micropython-esp32-stubs").files or []
    path = next(f.locate() for f in files if str(f) == f"{module}.pyi")
    tree = ast.parse(Path(path).read_text())
    return _names(tree)


def _names(tree: ast.Module) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"": set()}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out[""].add(node.name)
            out[node.name] = {
                n.name if isinstance(n, ast.FunctionDef) else _target(n)
                for n in node.body
                if isinstance(n, ast.FunctionDef | ast.AnnAssign | ast.Assign)
            }
        elif isinstance(node, ast.FunctionDef):
            out[""].add(node.name)
        elif isinstance(node, ast.AnnAssign | ast.Assign):
            out[""].add(_target(node))
    return out


def _target(node) -> str:
    t = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
    return getattr(t, "id", "")


@pytest.mark.parametrize("module", ["esp32", "machine", "network", "esp"])
def test_simulated_modules_offer_only_members_of_the_esp32_port(module):
    ours = _names(ast.parse((MPY / f"{module}.py").read_text()))
    real = stub_names(module)
    extra_top = {n for n in ours[""] if not n.startswith("_")} - real[""]
    assert not extra_top, f"{module} has names the ESP32 port lacks: {extra_top}"
    for cls, members in ours.items():
        if cls:
            extra = {m for m in members if m and not m.startswith("_")} - real.get(cls, set())
            assert not extra, f"{module}.{cls} has members the ESP32 port lacks: {extra}"


def test_typecheck_rejects_a_call_the_port_does_not_have(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import esp32\n\nesp32.Partition('ota_0').erase_everything()\n")
    res = subprocess.run(
        [sys.executable, "-m", "tools.typecheck", str(bad)], capture_output=True, text=True
    )
    assert res.returncode == 1
    assert 'has no attribute "erase_everything"' in res.stdout
