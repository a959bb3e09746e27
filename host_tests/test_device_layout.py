"""The device package's layout (issue: one readable package): no module imports a module that
imports it back, counting imports inside functions too, and no call goes through a module or
function name in a string (``__import__``, ``getattr`` on a module), so that a reader, an IDE
and the type checker can follow every call."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "device" / "acupdate"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that module `name` imports, anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            subs = {f"{base}.{a.name}" for a in node.names} & known
            out.update(subs)
            if base in known and len(subs) < len(node.names):  # names from the module itself
                out.add(base)
    out.discard(name)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles_in_the_device_package():
    mods = modules()
    known = set(mods)
    graph = {n: imports(n, p, known) for n, p in mods.items()}
    assert graph["acupdate.web"], "the import graph is empty: the finder is broken"
    assert cycles(graph) == []


# Names from data, not calls by name: each with its reason.
ALLOWED = {
    # the health check imports the modules the user's settings name ("health": {"imports"})
    "acupdate.startup: __import__(name)",
    # a Wi-Fi status code's name: network.STAT_* looked up, nothing called
    "acupdate.startup: getattr(network, name)",
    # Config's defaults, read from its class attributes by the setting's name
    "acupdate.config: getattr(Config, k, self)",
    # the qstr warm-up: the pages' modules imported once (names into the table), none called
    "acupdate.web.start: __import__('acupdate.' + n)",
}


def test_no_call_goes_through_a_name_in_a_string():
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id == "__import__" or (
                    node.func.id == "getattr" and not isinstance(node.args[1], ast.Constant)
                ):
                    found.append(f"{name}: {ast.unparse(node)}")
    assert sorted(set(found) - ALLOWED) == []
    assert sorted(ALLOWED - set(found)) == [], "an allowed case is gone: take it off the list"


# The longest string or bytes constant a module may hold. A constant is one allocation when
# its module loads, and modules load while the heap is in pieces: after an update job, the
# web server serves its pages at 64K from holes of about 600 bytes (measured: after a
# stalled upload, GET /update at 62K failed "allocating 669 bytes": progressbar.JS, then
# one piece of 668 bytes). Longer text is a tuple of pieces, which a page sends one by one.
LONGEST = 256
# Loaded once, at the web server's first start, while the heap is still in one piece.
LONG_ALLOWED = {"acupdate.web.start: _PAGES"}


def long_constants(name: str, tree: ast.Module) -> list[str]:
    """'module: name' (or 'module: line N') of each str or bytes constant longer than
    LONGEST, docstrings left out (the .mpy has none)."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    labels = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for c in ast.walk(node.value):
                labels[id(c)] = ", ".join(ast.unparse(t) for t in node.targets)
    return [
        f"{name}: {labels.get(id(c), f'line {c.lineno}')}"
        for c in ast.walk(tree)
        if isinstance(c, ast.Constant)
        and isinstance(c.value, (str, bytes))
        and len(c.value) > LONGEST
        and id(c) not in docstrings
    ]


def test_the_long_constant_finder_finds_one():
    tree = ast.parse('"""doc"""\nJS = (b"x" * 1, b"' + "y" * 300 + '")\nf(b"' + "z" * 300 + '")\n')
    assert long_constants("m", tree) == ["m: JS", "m: line 3"]


def test_no_constant_needs_a_long_piece_of_heap():
    found = set()
    for name, path in modules().items():
        found.update(long_constants(name, ast.parse(path.read_text(), str(path))))
    assert sorted(found - LONG_ALLOWED) == []
    assert sorted(LONG_ALLOWED - found) == [], "an allowed case is gone: take it off the list"
