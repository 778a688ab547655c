"""Edits: the answers of API agents (openai, anthropic), parsed and applied to the editable files.

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
import re
from pathlib import Path

DESCRIPTION_CHARS = 200


def _one_line(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."

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
            obj = json.loads(cand, strict=False)   # grammar output may hold raw control characters
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
