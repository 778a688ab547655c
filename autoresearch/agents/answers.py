"""Answers: the forms an API agent (openai, anthropic) may answer in, and the ask-correct loop.

Modes (option `mode`):

- `edits`: search/replace edits of the editable files (edits.py), for capable models;
- `knobs`: one or two UPPER_CASE constants of train.py with typed values,
  `{"changes": [{"name": "MATRIX_LR", "value": 0.06}], "reason": "..."}`; the schema names each
  constant with a `const` and types its value (integer or number), so a grammar-constrained
  server cannot invent a name. The tool rounds integers (floats to 3 significant digits),
  steps toward an out-of-range value instead of clipping to the bound, refuses a repeat of an
  earlier trial with a correction naming that trial, and writes the canonical description
  `NAME a -> b` with the model's one-line reason appended;
- `moves`: one of a shuffled enum of untried moves the tool computed (`MATRIX_LR 0.04 -> 0.06`);
- `auto`: edits first; the correction, if one is needed, asks for knobs.

Ranges come from `[search]` (those constants only) or, without it, from each constant's value
(x/÷10 for a positive float, x/÷4 for a positive int). `loop()` asks, applies, and on a bad
answer sends the error back (`corrections` times); `conforms()` checks an answer against the
schema, so an agent notices a server that accepts a response format without enforcing it.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch import knobs as knobs_mod
from autoresearch.agents import pricing
from autoresearch.agents.edits import SCHEMA as EDITS_SCHEMA, AnswerError, _one_line, apply_edits, parse_answer
from autoresearch.agents.schema import as_json, conforms  # noqa: F401  (answers.conforms is used by agents)

MODES = ("edits", "knobs", "moves", "auto")
REASON_CHARS = 160
MAX_MOVES = 12


@dataclass
class Reply:
    answer: object                      # the text, or a dict (a tool call's input)
    tokens: dict = field(default_factory=pricing.tokens)
    cut: bool = False                   # stopped at max_tokens


# ---------------------------------------------------------------------------- knobs
def _sig(value: float) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, 3 - int(math.floor(math.log10(abs(value)))) - 1)


def _range(value, spec) -> tuple:
    """(low, high, scale) for one constant: its [search] entry, else one derived from its value."""
    if isinstance(spec, (list, tuple)) and len(spec) in (2, 3):
        lo, hi = spec[0], spec[1]
        scale = spec[2] if len(spec) == 3 else ("int" if isinstance(value, int) else "linear")
    elif isinstance(value, int):
        lo, hi, scale = (max(1, value // 4), value * 4, "int_log") if value > 0 else (0, 8, "int")
    elif value > 0:
        lo, hi, scale = value / 10, value * 10, "log"
    elif value == 0:
        lo, hi, scale = 0.0, 1.0, "linear"
    else:
        lo, hi, scale = value * 10, -value * 10, "linear"
    return min(lo, value), max(hi, value), scale


class Knobs:
    """The knobs form for one proposal: which constants, their ranges, what was tried."""
    name = "knobs"

    def __init__(self, context):
        self.context = context
        self.file = next((f for f in (context.editable or tuple(context.files))
                          if f.endswith(".py") and f in context.files), None)
        self.source = context.files.get(self.file, "") if self.file else ""
        try:
            found = knobs_mod.find(self.source)
        except SyntaxError:
            found = {}
        numeric = {n: k for n, k in found.items() if isinstance(k.value, (int, float)) and not isinstance(k.value, bool)}
        search = dict(context.search or {})
        names = [n for n in numeric if n in search] or [n for n in numeric if "SEED" not in n]
        # the menu's order changes when the best does and stays the same between keeps, so that a server's
        # prompt cache holds it; the untried values (hints) are shuffled each trial, since a small model
        # picks by position
        best = context.best.number if context.best is not None else 0
        random.Random(context.seed * 1_000_003 + best).shuffle(names)
        self.values = {n: numeric[n].value for n in names}
        self.order = list(names)
        random.Random(context.seed * 1_000_003 + context.trial_number).shuffle(self.order)
        self.ranges = {n: _range(self.values[n], search.get(n)) for n in names}
        self.comments = {n: self._comment(numeric[n]) for n in names}
        self.tried = {}
        for t in context.history:
            point = (t.extra or {}).get("knobs") or {}
            if all(n in point for n in names) and names:
                self.tried.setdefault(self._key(point), t)

    def _comment(self, knob) -> str:
        line = self.source.splitlines()[knob.line - 1] if knob.line <= len(self.source.splitlines()) else ""
        return line.split("#", 1)[1].strip() if "#" in line else ""

    def _key(self, point: dict) -> tuple:
        return tuple((n, float(point[n])) for n in sorted(self.values))

    def usable(self) -> bool:
        return bool(self.values)

    def schema(self) -> dict:
        items = [{"type": "object", "properties": {
                    "name": {"type": "string", "const": n},
                    "value": {"type": "integer" if isinstance(v, int) else "number"}},
                  "required": ["name", "value"], "additionalProperties": False} for n, v in self.values.items()]
        return {"type": "object", "properties": {
                    "changes": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"anyOf": items}},
                    "reason": {"type": "string", "maxLength": REASON_CHARS}},
                "required": ["changes", "reason"], "additionalProperties": False}

    def menu(self) -> str:
        """The constants, their values and ranges: the same text from one keep to the next."""
        rows = [f"## Constants of {self.file} you may change (name: current value; range: what it is)"]
        fmt = knobs_mod.format_value
        for n, v in self.values.items():
            lo, hi, _ = self.ranges[n]
            rows.append(f"{n}: now {fmt(v)}; {'integer' if isinstance(v, int) else 'number'} from "
                        f"{fmt(lo)} to {fmt(hi)}: {self.comments[n]}")
        return "\n".join(rows)

    def hints(self) -> str:
        """The untried values one step from the current ones, in this trial's order."""
        fmt = knobs_mod.format_value
        rows = ["## Untried values next to the current ones"]
        rows += [f"{n}: {' or '.join(fmt(c) for c in self.neighbours(n)) or 'none near'}" for n in self.order]
        return "\n".join(rows)

    def instructions(self) -> str:
        return ("Answer with ONE JSON object and nothing else: "
                '{"changes": [{"name": "<a constant from the list>", "value": <its new value>}], '
                '"reason": "<one line: why this should help>"}. '
                "Change one constant (two at most) to a value not tried before.")

    def correction(self, error: str) -> str:
        return f"Your answer could not be used: {error}\n{self.instructions()}"

    def _step(self, name, current, wanted):
        """The value to use for `wanted`: itself inside the range, else one step from current toward it."""
        lo, hi, scale = self.ranges[name]
        if lo <= wanted <= hi:
            return wanted
        up = wanted > hi
        if scale in ("log", "int_log") and current > 0:
            new = current * 2 if up else current / 2
        else:
            step = 0.25 * (hi - lo)
            new = current + (step if up else -step)
        return min(max(new, lo), hi)

    def _value(self, name, raw):
        current = self.values[name]
        if isinstance(raw, str):
            try:
                raw = float(raw)
            except ValueError:
                raise AnswerError(f"the value of {name} must be a number, not {raw!r}") from None
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise AnswerError(f"the value of {name} must be a number")
        new = self._step(name, current, raw)
        return int(round(new)) if isinstance(current, int) else _sig(float(new))

    def neighbours(self, name) -> list:
        """Untried values one step from the current value of name (a correction names them)."""
        v = self.values[name]
        lo, hi, scale = self.ranges[name]
        if isinstance(v, int):
            cands = [v - 1, v + 1] + ([v * 2, v // 2] if scale == "int_log" and v >= 4 else [])
        elif v > 0 and scale == "log":
            cands = [v * 1.5, v / 1.5]
        else:
            cands = [v + 0.2 * (hi - lo), v - 0.2 * (hi - lo)]
        out = []
        for c in cands:
            c = int(round(c)) if isinstance(v, int) else _sig(float(c))
            if c != v and lo <= c <= hi and not self._repeat({name: c}) and c not in out:
                out.append(c)
        return out

    def _alternatives(self, name) -> str:
        near = self.neighbours(name)
        values = " or ".join(knobs_mod.format_value(c) for c in near)
        return (f"untried values of {name}: {values}; or change another constant" if near
                else f"change another constant than {name}")

    def _repeat(self, change: dict) -> str:
        point = dict(self.values, **change)
        t = self.tried.get(self._key(point))
        if t is None:
            return ""
        state = getattr(t.state, "value", t.state)
        value = f", {self.context.metric} {t.value:.6g}" if isinstance(t.value, float) else ""
        return f"trial {t.number} ({state}{value})"

    def describe(self, change: dict, reason: str) -> str:
        text = ", ".join(f"{n} {knobs_mod.format_value(self.values[n])} -> {knobs_mod.format_value(v)}"
                         for n, v in change.items())
        reason = _one_line(reason or "", REASON_CHARS).strip()
        return f"{text}: {reason}" if reason else text

    def write(self, change: dict) -> None:
        (Path(self.context.root) / self.file).write_text(knobs_mod.rewrite(self.source, change))

    def apply(self, answer) -> str:
        obj = as_json(answer)
        if not isinstance(obj, dict):
            raise AnswerError("the answer is not a JSON object")
        changes = obj.get("changes")
        if changes is None and "name" in obj:           # a single change given flat
            changes = [obj]
        if isinstance(changes, dict):
            changes = [changes]
        if not isinstance(changes, list) or not changes:
            raise AnswerError("'changes' must list one or two {\"name\", \"value\"} objects")
        if len(changes) > 2:
            raise AnswerError("change at most two constants")
        change, same = {}, []
        for c in changes:
            name = str((c or {}).get("name", "")).strip() if isinstance(c, dict) else ""
            if name not in self.values:
                raise AnswerError(f"{name or 'the name'} is not one of the constants: {', '.join(self.values)}")
            if name in change or name in same:
                continue                   # named twice: the first one counts
            new = self._value(name, c.get("value"))
            if new == self.values[name]:
                same.append(name)          # not a change; the other one may be
            else:
                change[name] = new
        if not change:
            name = same[0]
            raise AnswerError(f"{name} is already {knobs_mod.format_value(self.values[name])}; "
                              f"{self._alternatives(name)}")
        earlier = self._repeat(change)
        if earlier:
            raise AnswerError(f"{self.describe(change, '')} repeats {earlier}; {self._alternatives(next(iter(change)))}")
        self.write(change)
        return self.describe(change, str(obj.get("reason") or ""))


# ---------------------------------------------------------------------------- moves
class Moves(Knobs):
    """The moves form: an enum of untried one-constant moves, shuffled (a small model picks by position)."""
    name = "moves"

    def __init__(self, context):
        super().__init__(context)
        self.moves = {self.describe({n: c}, ""): {n: c} for n in self.values for c in self.neighbours(n)}
        keys = sorted(self.moves)
        random.Random(context.seed * 1_000_003 + context.trial_number).shuffle(keys)
        self.moves = {k: self.moves[k] for k in keys[:MAX_MOVES]}

    def usable(self) -> bool:
        return bool(self.moves)

    def schema(self) -> dict:
        return {"type": "object", "properties": {
                    "move": {"type": "string", "enum": list(self.moves)},
                    "reason": {"type": "string", "maxLength": REASON_CHARS}},
                "required": ["move", "reason"], "additionalProperties": False}

    def menu(self) -> str:
        rows = [f"## Untried moves (each changes one constant of {self.file})"]
        rows += [f"- {m}   ({self.comments[next(iter(c))]})" for m, c in self.moves.items()]
        return "\n".join(rows)

    def hints(self) -> str:
        return ""

    def instructions(self) -> str:
        return ('Answer with ONE JSON object and nothing else: {"move": "<one move, copied exactly from the '
                'list>", "reason": "<one line: why this should help>"}.')

    def apply(self, answer) -> str:
        obj = as_json(answer)
        move = str(obj.get("move", "")).strip() if isinstance(obj, dict) else ""
        if move not in self.moves:
            raise AnswerError(f"{move or 'the move'!r} is not one of the listed moves; copy one exactly")
        change = self.moves[move]
        self.write(change)
        return self.describe(change, str(obj.get("reason") or ""))


# ---------------------------------------------------------------------------- edits
class Edits:
    """Search/replace edits of any editable file (edits.py)."""
    name = "edits"

    def __init__(self, context):
        self.context = context

    def usable(self) -> bool:
        return True

    def schema(self) -> dict:
        return EDITS_SCHEMA

    def menu(self) -> str:
        return ""

    def hints(self) -> str:
        return ""

    def instructions(self) -> str:
        return ('Answer with ONE JSON object {"description": "...", "edits": [{"file": "...", '
                '"search": "exact lines copied from the file", "replace": "..."}]} and nothing else.')

    def correction(self, error: str) -> str:
        return f"Your answer could not be applied: {error}\n{self.instructions()}"

    def apply(self, answer) -> str:
        description, edits = parse_answer(answer)
        apply_edits(self.context, edits)
        return description


FORMS = {"edits": Edits, "knobs": Knobs, "moves": Moves}


def plan(mode: str, corrections: int) -> list[str]:
    """The form of each call: auto asks for edits, then knobs on the correction."""
    if mode == "auto":
        return ["edits"] + ["knobs"] * corrections
    return [mode] * (1 + corrections)


def first_form(context, mode: str):
    """The form of the first call (knobs or moves fall back to edits when train.py has no constants)."""
    form = FORMS[plan(mode, 0)[0]](context)
    return form if form.usable() else Edits(context)


# ---------------------------------------------------------------------------- the loop
@dataclass
class Outcome:
    description: str = ""
    invalid: str = ""
    tokens: dict = field(default_factory=pricing.tokens)
    calls: int = 0
    form: str = ""


def loop(context, ask, first_message: str, mode: str, corrections: int = 1, max_tokens: int = 0) -> Outcome:
    """Ask, apply, and on a bad answer send the error back (`corrections` times).

    ask(message, form) -> Reply. The first message is the whole prompt (built for the first
    form); a correction names the error, and when the form changes (auto: edits -> knobs) it
    carries the new form's menu and instructions."""
    out = Outcome()
    forms = plan(mode, corrections)
    form = first_form(context, mode)
    message, error = first_message, ""
    for i in range(len(forms)):
        if i:
            wanted = FORMS[forms[i]](context) if forms[i] != form.name else form
            if wanted.name != form.name and wanted.usable():
                form = wanted
                message = (f"Your answer could not be used: {error}\nInstead:\n{form.menu()}\n{form.hints()}\n"
                           f"{form.instructions()}")
            else:
                message = form.correction(error)
        reply = ask(message, form)
        out.calls += 1
        out.form = form.name
        out.tokens = {k: out.tokens[k] + int(reply.tokens.get(k) or 0) for k in pricing.KINDS}
        try:
            out.description = form.apply(reply.answer)
            return out
        except AnswerError as e:
            error = str(e)
            if reply.cut:
                error = (f"the answer was cut at max_tokens ({max_tokens or '?'}) before it was complete; "
                         f"answer shorter")
    out.invalid = f"{'cut at max_tokens' if reply.cut else 'malformed answer'}: {_one_line(error, 300)}"
    return out
