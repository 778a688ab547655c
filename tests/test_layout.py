"""The package's shape: every module opens with a docstring, none is over about 400 lines (the
harness files excepted), and the imports between modules (at the top or inside functions) form
no circle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "autoresearch"
EXEMPT = {"harness/train.py", "harness/prepare.py"}
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rsplit(".", 1)[0] if "." in t else ""
            if t and t != name and t != "autoresearch":
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def test_no_import_circle():
    g = graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(n):
        state[n] = 1
        path.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(m):] + [m]))
            if not state.get(m):
                visit(m)
        path.pop()
        state[n] = 2

    for n in sorted(g):
        if not state.get(n):
            visit(n)


def test_modules_are_small_and_say_what_they_are():
    for name, path in _modules().items():
        rel = str(path.relative_to(PACKAGE))
        text = path.read_text()
        if rel not in EXEMPT:
            assert len(text.splitlines()) <= MAX_LINES, f"{rel}: {len(text.splitlines())} lines"
        if text.strip():
            assert ast.get_docstring(ast.parse(text)), f"{rel} has no docstring"
