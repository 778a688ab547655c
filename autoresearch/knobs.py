"""Knobs: the hyperparameters of a Python file, where they are written as literals.

Two kinds: UPPER_CASE constants at the top level (`MATRIX_LR = 0.04`), and argparse defaults
(`parser.add_argument("--lr", type=float, default=3e-4)`, named by their dest, `lr`).
`find(source)` lists both with `ast`; `rewrite(source, {NAME: value})` replaces only those
literals' characters, so comments, layout and everything else stay byte-for-byte the same.
Used by the builtin agent (to propose values) and by harness profiles (to set defaults).
`on_command(run, knobs)` names the flags a run command passes itself, whose defaults do nothing.
"""

from __future__ import annotations

import ast
import shlex
import threading
from dataclasses import dataclass

_PARSING = threading.Lock()


def parse(source: str) -> ast.Module:
    """ast.parse, one thread at a time. CPython 3.11 keeps the AST constructor's recursion depth in
    one counter per interpreter, and a parse in a thread beside another one failed here (in the
    scheduler's tests) with "SystemError: AST constructor recursion depth mismatch" (also reported
    in threaded programs at CPython gh-106905). Every parse of this package goes through here."""
    with _PARSING:
        return ast.parse(source)


@dataclass(frozen=True)
class Knob:
    name: str
    value: object      # int, float, str or bool
    line: int          # 1-based line of the literal
    col: int           # 0-based column (characters) of the literal's start
    end_line: int
    end_col: int
    flag: str = ""     # "--lr" for an argparse default, "" for a constant


def _literal(node: ast.AST):
    """The value of a plain literal (with an optional leading minus), else raise ValueError."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, (int, float)) and not isinstance(node.operand.value, bool)):
        return -node.operand.value
    raise ValueError("not a literal")


def find(source: str) -> dict[str, Knob]:
    """Top-level `NAME = <literal>` assignments with an all-caps name, in file order, then argparse
    defaults by dest (a constant wins a clash of names)."""
    tree = parse(source)
    knobs = _constants(tree)
    for name, knob in _flags(tree).items():
        knobs.setdefault(name, knob)
    return knobs


def _flags(tree: ast.AST) -> dict[str, Knob]:
    """`*.add_argument("--name", ..., default=<literal>)` anywhere in the file, by dest."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"):
            continue
        options = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        flags = [o for o in options if o.startswith("--")] or [o for o in options if o.startswith("-")]
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        if not flags or "default" not in kw:
            continue
        dest = kw.get("dest")
        name = dest.value if isinstance(dest, ast.Constant) and isinstance(dest.value, str) else \
            flags[0].lstrip("-").replace("-", "_")
        try:
            lit = _literal(kw["default"])
        except ValueError:
            continue
        v = kw["default"]
        found.append(Knob(name, lit, v.lineno, v.col_offset, v.end_lineno, v.end_col_offset, flag=flags[0]))
    found.sort(key=lambda k: (k.line, k.col))
    return {k.name: k for k in found}


def on_command(command: str, knobs: dict[str, Knob]) -> list[str]:
    """The knobs whose flag the run command passes itself (`--lr 0.1`, `--lr=0.1`): their defaults do nothing."""
    try:
        argv = shlex.split(command)
    except ValueError:
        argv = command.split()
    given = {a.split("=", 1)[0] for a in argv if a.startswith("-")}
    return [k.name for k in knobs.values() if k.flag and k.flag in given]


def _constants(tree: ast.AST) -> dict[str, Knob]:
    knobs: dict[str, Knob] = {}
    for node in tree.body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if not isinstance(target, ast.Name) or not target.id.isupper() or target.id.startswith("_"):
            continue
        try:
            lit = _literal(value)
        except ValueError:
            continue
        knobs[target.id] = Knob(target.id, lit, value.lineno, value.col_offset,
                                value.end_lineno, value.end_col_offset)
    return knobs


def format_value(value) -> str:
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, float):
        # short and exact enough for a human to read in a diff: 0.04, 3e-05, 0.95
        text = f"{value:.4g}"
        return text if any(c in text for c in ".en") else text + ".0"
    return repr(value)


def rewrite(source: str, values: dict[str, object]) -> str:
    """Return source with each named knob's literal replaced. Unknown names raise KeyError."""
    knobs = find(source)
    missing = [n for n in values if n not in knobs]
    if missing:
        raise KeyError(f"no such constant: {', '.join(missing)}")
    return _put(source, [(knobs[n], format_value(v)) for n, v in values.items()])


def skeleton(source: str) -> str:
    """The source with every knob's literal set aside (`...`): two files with the same skeleton differ
    in their knobs' values only (however the values are written). Raises SyntaxError as find() does."""
    return _put(source, [(k, "...") for k in find(source).values()])


def _put(source: str, texts: list[tuple[Knob, str]]) -> str:
    """Each knob's literal replaced by its text."""
    lines = source.splitlines(keepends=True)
    # replace from the bottom up so earlier offsets stay valid
    for knob, text in sorted(texts, key=lambda kt: (kt[0].line, kt[0].col), reverse=True):
        # ast offsets are UTF-8 byte offsets; work in bytes per line
        first = lines[knob.line - 1].encode()
        last = lines[knob.end_line - 1].encode()
        lines[knob.line - 1:knob.end_line] = [first[:knob.col].decode() + text + last[knob.end_col:].decode()]
    return "".join(lines)
