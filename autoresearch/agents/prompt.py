"""The prompt every LLM agent gets, and the parser + applier of API agents' answers.

`build(context)` is the ONE function that turns a Context into text: the rules, program.md,
the editable files, a compact results table (last ~30 trials), the best trial, near misses
(discarded trials closest to the best), the measured noise and the log tail of the last
crash. Everything is bounded: `max_chars` caps the whole text (history, log tail, program
and files shrink in that order), so a small model's context window never fills.

Two answer modes:

- `answer="tools"` (claude, codex, command): the agent edits the files itself and ends its
  reply with one line `DESCRIPTION: <what was tried>` (`description_from_text` reads it).
- `answer="edits"` (openai, anthropic): the model answers with one JSON object

      {"description": "one line: what was tried",
       "edits": [{"file": "train.py", "search": "exact old text", "replace": "new text"}]}

  (the schema is `SCHEMA`, used for structured output where the API has it). Plain-text
  answers are parsed too: JSON inside a ```json fence, or aider-style blocks

      train.py
      <<<<<<< SEARCH
      old text
      =======
      new text
      >>>>>>> REPLACE

  with a `DESCRIPTION: ...` line. `apply_edits` changes the editable files under
  `context.root` only, all edits or none: each search text is matched exactly first (it must
  occur once), then ignoring trailing whitespace, then ignoring indentation (the replacement
  is re-indented). Any problem (unknown or read-only file, search text not found, no change)
  raises `AnswerError`, whose message goes back to the model for one corrective retry.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

MAX_CHARS = 60_000        # whole prompt; ~15k tokens
HISTORY_ROWS = 30         # last N trials in the results table
NEAR_MISSES = 3
LOG_CHARS = 2_000         # tail of the last crash log
DESCRIPTION_CHARS = 200

SCHEMA = {
    "type": "object",
    "properties": {
        "description": {"type": "string"},
        "edits": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {"file": {"type": "string"}, "search": {"type": "string"},
                               "replace": {"type": "string"}},
                "required": ["file", "search", "replace"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["description", "edits"],
    "additionalProperties": False,
}


class AnswerError(ValueError):
    """A model's answer could not be parsed or applied; the message is sent back to it."""


# ---------------------------------------------------------------------------- building
def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _one_line(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _state(trial) -> str:
    return getattr(trial.state, "value", str(trial.state))


def _row(trial) -> str:
    return f"{trial.number:>4}  {_state(trial):<8} {_fmt(trial.value):>10}  {_one_line(trial.description)}"


def _near_misses(context, n: int) -> list:
    best = context.best
    if best is None or best.value is None:
        return []
    pool = [t for t in context.history
            if _state(t) == "discard" and t.value is not None and math.isfinite(t.value)
            and t.number != best.number]
    pool.sort(key=lambda t: abs(t.value - best.value))
    return pool[:n]


def _rules(context, answer: str) -> str:
    editable = ", ".join(context.editable or tuple(context.files)) or "(none)"
    better = "lower" if context.direction == "minimize" else "higher"
    lines = [
        "You are one step of an automated research loop. Propose ONE change to the editable "
        f"files ({editable}) that you expect to make the metric `{context.metric}` {better} "
        "(the run has a fixed time budget).",
        "Rules: make exactly one focused change to the editable files only; do not run training "
        "or any other command; do not commit; do not touch any other file (the loop checks the "
        "diff, runs the experiment, keeps or reverts it). Do not repeat what already failed.",
    ]
    if context.readonly:
        lines.append(f"Read-only (never edit): {', '.join(context.readonly)}.")
    if answer == "tools":
        lines.append("Edit the files in place with your file tools. When done, end your reply with "
                     "one line: `DESCRIPTION: <one line saying what you tried>`.")
    else:
        lines.append(
            "Answer with ONE JSON object and nothing else:\n"
            '{"description": "<one line: what you tried>", "edits": [{"file": "<editable file>", '
            '"search": "<exact text copied from the file, a few whole lines>", "replace": "<new text>"}]}\n'
            "Each search text must appear exactly once in the file; keep it short.")
    return "\n".join(lines)


def _history(context, rows: int, near: int) -> str:
    out = []
    hist = list(context.history)
    if hist and rows > 0:
        shown = hist[-rows:]
        head = f"## Results so far ({len(hist)} trials" + (f", last {len(shown)} shown" if len(shown) < len(hist) else "") + ")"
        out += [head, f"{'#':>4}  {'state':<8} {context.metric:>10}  description"]
        out += [_row(t) for t in shown]
    elif hist:
        out.append(f"## Results so far: {len(hist)} trials (table left out for space)")
    if context.best is not None:
        out += ["", f"## Best so far (the files below): trial {context.best.number}, "
                    f"{context.metric} = {_fmt(context.best.value)}: {_one_line(context.best.description)}"]
    misses = _near_misses(context, near)
    if misses:
        out += ["", "## Near misses (discarded, closest to the best)"] + [_row(t) for t in misses]
    if context.noise_sd:
        out += ["", f"Measured noise of {context.metric}: sd {context.noise_sd:.3g} "
                    f"(a change must beat the best by more than this to be kept)."]
    return "\n".join(out).strip()


def _truncate_middle(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    keep = max(limit - 60, 0)
    head, tail = keep * 2 // 3, keep - keep * 2 // 3
    return text[:head] + f"\n... [{len(text) - keep} characters left out] ...\n" + text[len(text) - tail:]


def build(context, *, answer: str = "edits", max_chars: int = MAX_CHARS, history_rows: int = HISTORY_ROWS,
          near_misses: int = NEAR_MISSES, log_chars: int = LOG_CHARS, include_files: bool = True) -> str:
    """The whole prompt for one proposal, at most about max_chars characters."""
    if answer not in ("edits", "tools"):
        raise ValueError(f"answer must be 'edits' or 'tools', not {answer!r}")
    rules = _rules(context, answer)
    program = (context.program or "").strip()
    files = dict(context.files) if include_files else {}
    log = (context.last_failure or "").strip()

    def assemble(rows, log_limit, program_limit, file_limit):
        parts = [rules]
        if program:
            parts.append("## program.md (the human's instructions)\n" + _truncate_middle(program, program_limit))
        hist = _history(context, rows, near_misses)
        if hist:
            parts.append(hist)
        if log and log_limit > 0:
            tail = log[-log_limit:]
            parts.append(f"## Log tail of the last crash\n```\n{tail}\n```")
        for name, text in files.items():
            parts.append(f"## {name} (editable)\n```\n{_truncate_middle(text, file_limit)}\n```")
        if context.trial_number:
            parts.append(f"This is trial {context.trial_number}.")
        return "\n\n".join(parts) + "\n"

    rows, log_limit, program_limit, file_limit = history_rows, log_chars, 20_000, max_chars
    text = assemble(rows, log_limit, program_limit, file_limit)
    # shrink the least useful parts first until it fits
    for step in range(12):
        if len(text) <= max_chars:
            break
        if rows > 10:
            rows = 10
        elif log_limit > 500:
            log_limit = 500
        elif rows > 0:
            rows = 0
        elif program_limit > 2_000:
            program_limit = 2_000
        else:
            over = len(text) - max_chars
            biggest = max((len(t) for t in files.values()), default=0)
            file_limit = max(min(file_limit, biggest) - over - 100, 500)
            if program_limit > 500 and file_limit == 500:
                program_limit = 500
        text = assemble(rows, log_limit, program_limit, file_limit)
    return text


# ---------------------------------------------------------------------------- parsing
_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.S)
_BLOCK = re.compile(r"(?:^|\n)[ \t]*`*([^\n`]*?)`*[ \t]*\n(?:```[^\n]*\n)?<{5,9} ?SEARCH[^\n]*\n(.*?)\n?={5,9}[ \t]*\n(.*?)\n?>{5,9} ?REPLACE", re.S)
_DESC = re.compile(r"^\s*(?:\**)DESCRIPTION(?:\**)\s*:\s*(.+?)\s*$", re.I | re.M)


def description_from_text(text: str) -> str:
    """The `DESCRIPTION:` line of a reply, else its last non-empty line; one line, bounded."""
    found = _DESC.findall(text or "")
    if found:
        return _one_line(found[-1].strip("`* "), DESCRIPTION_CHARS)
    lines = [l.strip() for l in (text or "").splitlines() if l.strip() and not l.strip().startswith("```")]
    return _one_line(lines[-1], DESCRIPTION_CHARS) if lines else ""


def _json_candidates(text: str):
    yield text
    for m in _FENCE.finditer(text):
        yield m.group(1)
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        yield text[start:end + 1]


def _from_obj(obj) -> tuple[str, list[dict]]:
    if not isinstance(obj, dict):
        raise AnswerError("the answer must be a JSON object with 'description' and 'edits'")
    desc = obj.get("description")
    edits = obj.get("edits")
    if isinstance(edits, dict):
        edits = [edits]
    if not isinstance(desc, str) or not desc.strip():
        raise AnswerError("'description' must be a non-empty string (one line: what you tried)")
    if not isinstance(edits, list) or not edits:
        raise AnswerError("'edits' must be a non-empty list of {\"file\", \"search\", \"replace\"}")
    clean = []
    for i, e in enumerate(edits):
        if not isinstance(e, dict) or not all(isinstance(e.get(k), str) for k in ("file", "search", "replace")):
            raise AnswerError(f"edit {i + 1} must have string fields 'file', 'search' and 'replace'")
        clean.append({"file": e["file"], "search": e["search"], "replace": e["replace"]})
    return _one_line(desc, DESCRIPTION_CHARS), clean


def parse_answer(answer) -> tuple[str, list[dict]]:
    """(description, edits) from a model's answer: a dict, JSON text, or SEARCH/REPLACE blocks."""
    if isinstance(answer, dict):
        return _from_obj(answer)
    text = str(answer or "").strip()
    if not text:
        raise AnswerError("the answer was empty")
    blocks = _BLOCK.findall(text)
    if blocks and not text.startswith("{"):
        desc = description_from_text(_BLOCK.sub("", text))
        if not desc:
            raise AnswerError("add a line `DESCRIPTION: <one line: what you tried>`")
        return desc, [{"file": f, "search": s, "replace": r} for f, s, r in blocks]
    error = None
    for cand in _json_candidates(text):
        try:
            obj = json.loads(cand)
        except ValueError as e:
            error = error or e
            continue
        return _from_obj(obj)
    raise AnswerError(f"the answer is not valid JSON ({error}); answer with one JSON object "
                      '{"description": ..., "edits": [{"file": ..., "search": ..., "replace": ...}]}')


# ---------------------------------------------------------------------------- applying
def _norm_name(name: str) -> str:
    name = name.strip().strip("`'\"").replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _find_lines(text: str, search: str, key) -> tuple[int, int] | None:
    """(start, end) line span of text whose lines match search's lines under key; must be unique."""
    lines = text.splitlines(keepends=True)
    want = [key(l) for l in search.strip("\n").splitlines()]
    while want and not want[-1]:
        want.pop()
    if not want or not any(want):
        return None
    have = [key(l) for l in lines]
    hits = [i for i in range(len(lines) - len(want) + 1) if have[i:i + len(want)] == want]
    if len(hits) != 1:
        return None if not hits else (-1, len(hits))
    return hits[0], hits[0] + len(want)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _apply_one(text: str, search: str, replace: str) -> str:
    count = text.count(search) if search else 0
    if count == 1:
        return text.replace(search, replace, 1)
    if count > 1:
        raise AnswerError(f"search text occurs {count} times; include more surrounding lines so it is unique")
    if not search.strip():
        raise AnswerError("search text is empty; copy the exact lines to change from the file")
    for key, reindent in ((lambda l: l.rstrip(), False), (lambda l: l.strip(), True)):
        span = _find_lines(text, search, key)
        if span is None:
            continue
        if span[0] == -1:
            raise AnswerError(f"search text matches {span[1]} places; include more surrounding lines")
        start, end = span
        lines = text.splitlines(keepends=True)
        new = replace.strip("\n").splitlines()
        if reindent:
            have = _indent(lines[start])
            first = next((l for l in search.strip("\n").splitlines() if l.strip()), "")
            said = _indent(first)
            fixed = []
            for l in new:
                if l.startswith(said):
                    l = have + l[len(said):]
                elif l.strip():
                    l = have + l.lstrip()
                fixed.append(l)
            new = fixed
        block = "".join(l + "\n" for l in new)
        if end == len(lines) and not text.endswith("\n"):
            block = block[:-1]      # keep a missing final newline missing
        return "".join(lines[:start]) + block + "".join(lines[end:])
    raise AnswerError("search text not found in the file; copy the exact lines from the file as shown")


def apply_edits(context, edits: list[dict]) -> list[str]:
    """Apply edits to the editable files under context.root, all or none; return the changed names."""
    root = Path(context.root).resolve()
    editable = {_norm_name(n) for n in (context.editable or tuple(context.files))}
    texts: dict[str, str] = {}
    for i, e in enumerate(edits):
        name = _norm_name(e["file"])
        where = f"edit {i + 1} ({name or 'no file'})"
        if name not in editable:
            raise AnswerError(f"{where}: only these files may be edited: {', '.join(sorted(editable))}")
        path = (root / name).resolve()
        if root not in path.parents:
            raise AnswerError(f"{where}: the file is outside the workspace")
        if name not in texts:
            texts[name] = path.read_text() if path.exists() else context.files.get(name, "")
        try:
            texts[name] = _apply_one(texts[name], e["search"], e["replace"])
        except AnswerError as err:
            raise AnswerError(f"{where}: {err}") from None
    changed = []
    for name, text in texts.items():
        path = root / name
        old = path.read_text() if path.exists() else None
        if text != old:
            changed.append(name)
    if not changed:
        raise AnswerError("the edits change nothing; make one real change")
    for name in changed:
        (root / name).write_text(texts[name])
    return changed


# ---------------------------------------------------------------------------- the loop
def correction(error: str) -> str:
    """The message that sends a parse/apply error back to the model (the one corrective retry)."""
    return (f"Your answer could not be applied: {error}\n"
            "Answer again with ONE JSON object {\"description\": \"...\", \"edits\": [{\"file\": \"...\", "
            "\"search\": \"exact lines copied from the file\", \"replace\": \"...\"}]} and nothing else.")


def edit_loop(context, ask, corrections: int = 1) -> tuple[str, str, int, int]:
    """Ask, parse, apply; on a bad answer send the error back (`corrections` times).

    ask(error_or_None) -> (answer, tokens_in, tokens_out); returns
    (description, invalid_reason, tokens_in, tokens_out): invalid_reason is "" on success.
    """
    tokens_in = tokens_out = 0
    error, description = None, ""
    for _ in range(1 + corrections):
        answer, t_in, t_out = ask(error)
        tokens_in, tokens_out = tokens_in + (t_in or 0), tokens_out + (t_out or 0)
        try:
            description, edits = parse_answer(answer)
            apply_edits(context, edits)
            return description, "", tokens_in, tokens_out
        except AnswerError as e:
            error = str(e)
    # the last parsed description (if any) still says what the model meant to try
    return description, f"malformed answer: {_one_line(error, 300)}", tokens_in, tokens_out
