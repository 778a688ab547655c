"""The prompt every LLM agent gets.

`build(context)` is the ONE function that turns a Context into text: the rules, program.md,
the editable files (or, for the knobs and moves answers, the menu of constants or moves
instead), a compact results table (last ~30 trials), the best trial, the trial the files hold when
it is not the best (tree search: `context.node`), near misses (discarded
trials closest to the best), the measured noise and the log tail of the last crash.
Everything is bounded: `max_chars` caps the whole text; the results table shrinks first
(to 10 rows), then the log tail, then program.md, then the table goes, then the files, so a
small model's context window never fills. The knobs and moves answers (meant for small,
slow models) get a short table (10 rows, each change without its reason, no near misses: the menu
already offers only untried values) and program.md's head and tail (800 characters). `budget_chars(context_tokens, max_tokens)` turns a
server's context window into that cap, leaving room for the answer and one correction.

The answer forms of API agents, and how they are parsed and applied, are in answers.py and
edits.py.
"""

from __future__ import annotations

import math

from autoresearch.agents.edits import (  # noqa: F401  (re-exported for the agents)
    SCHEMA, AnswerError, _one_line, apply_edits, description_from_text, parse_answer)

MAX_CHARS = 60_000        # whole prompt; ~15k tokens
CHARS_PER_TOKEN = 3.0     # conservative for code and tables
CORRECTION_TOKENS = 400   # a correction message, with the menu of a new answer form
HISTORY_ROWS = 30         # last N trials in the results table
NEAR_MISSES = 3
LOG_CHARS = 2_000         # tail of the last crash log
SHORT_ROWS = 10           # knobs and moves answers: results table rows
SHORT_PROGRAM = 800       # knobs and moves answers: program.md's head and tail, characters

# ---------------------------------------------------------------------------- building
def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _state(trial) -> str:
    return getattr(trial.state, "value", str(trial.state))


def _row(trial, short: bool = False) -> str:
    """One trial: its outcome, its one-line hypothesis (the description, and the agent's reason where it
    gave one), and for a failure why it failed: the study's memory, shown to every LLM agent. Short (the
    knobs and moves answers, for small, slow models): the change alone ("NAME a -> b"), without reasons."""
    desc = trial.description.split(": ", 1)[0] if short else trial.description
    text = f"{trial.number:>4}  {_state(trial):<8} {_fmt(trial.value):>10}  {_one_line(desc, 70) if short else _one_line(desc)}"
    why = None if short else ((getattr(trial, "extra", None) or {}).get("agent") or {}).get("why")
    if why:
        text += f" (why: {_one_line(str(why), 160)})"
    if _state(trial) in ("crash", "timeout", "invalid") and trial.reason:
        text += f" -> {_one_line(trial.reason.splitlines()[0], 60 if short else 120)}"
    # a reason may quote a file name that is not UTF-8 (a lone surrogate): the prompt is written as UTF-8
    return text.encode("utf-8", "replace").decode("utf-8")


def since_keep(history) -> int:
    """Trials since the last keep (the baseline is a keep)."""
    n = 0
    for t in reversed(history):
        if _state(t) == "keep":
            break
        n += 1
    return n


def _near_misses(context, n: int) -> list:
    best = context.best
    if best is None or best.value is None:
        return []
    pool = [t for t in context.history
            if _state(t) == "discard" and t.value is not None and math.isfinite(t.value)
            and t.number != best.number]
    pool.sort(key=lambda t: abs(t.value - best.value))
    return pool[:n]


def budget_chars(context_tokens: int | None, max_tokens: int, max_chars: int = MAX_CHARS) -> int:
    """The prompt's cap in characters so that prompt + answer + correction + answer fit the context."""
    if not context_tokens:
        return max_chars
    room = int(context_tokens) - 2 * int(max_tokens) - CORRECTION_TOKENS
    if room < 250:
        from autoresearch.errors import ConfigError
        raise ConfigError(f"context_tokens {context_tokens} leaves no room for a prompt with max_tokens "
                          f"{max_tokens} (twice, for one correction): lower max_tokens or raise context_tokens")
    return min(max_chars, int(room * CHARS_PER_TOKEN))


def _rules(context, answer: str, instructions: str = "") -> str:
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
                     "one line: `DESCRIPTION: <one line saying what you tried and why you expect it to help>`.")
    elif instructions:
        lines.append(instructions)
    else:
        lines.append(
            "Answer with ONE JSON object and nothing else:\n"
            '{"description": "<one line: what you tried and why you expect it to help>", "edits": [{"file": "<editable file>", '
            '"search": "<exact text copied from the file, a few whole lines>", "replace": "<new text>"}]}\n'
            "Each search text must appear exactly once in the file; keep it short.")
    return "\n".join(lines)


def _history(context, rows: int, near: int, below: str = "the files below", short: bool = False) -> str:
    out = []
    hist = list(context.history)
    if hist and rows > 0:
        shown = hist[-rows:]
        head = f"## Results so far ({len(hist)} trials" + (f", last {len(shown)} shown" if len(shown) < len(hist) else "") + ")"
        out += [head, f"{'#':>4}  {'state':<8} {context.metric:>10}  description"]
        out += [_row(t, short) for t in shown]
    elif hist:
        out.append(f"## Results so far: {len(hist)} trials (table left out for space)")
    node = getattr(context, "node", None)
    if context.best is not None:
        out += ["", f"## Best so far ({below if node is None else 'not ' + below}): trial {context.best.number}, "
                    f"{context.metric} = {_fmt(context.best.value)}: {_one_line(context.best.description)}"]
    if node is not None:        # tree search: the files are another top trial's code
        out += ["", f"## You improve trial {node.number} ({below}), not the best: {context.metric} = "
                    f"{_fmt(node.value)}: {_one_line(node.description)}",
                "It is one of the top trials, worth building on. Your change is kept only if the result beats the best; "
                "it is then moved onto the best's code together with trial "
                f"{node.number}'s change."]
    misses = _near_misses(context, near)
    if misses:
        out += ["", "## Near misses (discarded, closest to the best)"] + [_row(t, short) for t in misses]
    stalled = since_keep(hist)
    hint = getattr(context, "stall_hint", 0)
    if hint and stalled >= hint:
        out += ["", f"## Change direction: the last {stalled} trials kept nothing",
                "Small variations of what is above are not paying. Try a different kind of change (another "
                "part of the model, the optimizer, the schedule, the data pipeline), not another tweak of the same."]
    notes = [str(n) for n in getattr(context, "notes", ()) or ()]
    if notes:
        out += [""] + notes
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
          near_misses: int = NEAR_MISSES, log_chars: int = LOG_CHARS, include_files: bool = True,
          menu: str = "", instructions: str = "", hints: str = "") -> str:
    """The whole prompt for one proposal, at most about max_chars characters.

    answer: "tools" (the agent edits files itself), "edits", or "knobs" / "moves" (the menu
    replaces the files; `instructions` says how to answer). For those two the parts that change from
    trial to trial (the results table, the `hints`) come last, after the menu, so that a server's prompt
    cache keeps everything before them."""
    if answer not in ("edits", "tools", "knobs", "moves"):
        raise ValueError(f"answer must be 'edits', 'tools', 'knobs' or 'moves', not {answer!r}")
    rules = _rules(context, answer, instructions)
    program = (context.program or "").strip()
    files = dict(context.files) if include_files and answer in ("edits", "tools") else {}
    short = answer in ("knobs", "moves")    # for small, slow models: every token of prompt costs time
    log = (context.last_failure or "").strip()

    def assemble(rows, log_limit, program_limit, file_limit):
        parts = [rules]
        if program:
            parts.append("## program.md (the human's instructions)\n" + _truncate_middle(program, program_limit))
        if menu and short:
            parts.append(menu)
        hist = _history(context, rows, 0 if short else near_misses,
                        "the files below" if files else "the current values above", short)
        if hist:
            parts.append(hist)
        if log and log_limit > 0:
            tail = log[-log_limit:]
            parts.append(f"## Log tail of the last crash\n```\n{tail}\n```")
        for name, text in files.items():
            parts.append(f"## {name} (editable)\n```\n{_truncate_middle(text, file_limit)}\n```")
        if menu and not short:
            parts.append(menu)
        if hints:
            parts.append(hints)
        if context.trial_number:
            parts.append(f"This is trial {context.trial_number}.")
        return "\n\n".join(parts) + "\n"

    rows, log_limit, program_limit, file_limit = history_rows, log_chars, 20_000, max_chars
    if short:
        rows, program_limit = min(rows, SHORT_ROWS), SHORT_PROGRAM
    text = assemble(rows, log_limit, program_limit, file_limit)
    # shrink the least useful parts first until it fits; the results table outlives program.md's middle
    for step in range(16):
        if len(text) <= max_chars:
            break
        if rows > 10:
            rows = 10
        elif log_limit > 500:
            log_limit = 500
        elif program_limit > 2_000:
            program_limit = 2_000
        elif rows > 5:
            rows = 5
        elif program_limit > 500:
            program_limit = 500
        elif rows > 0:
            rows = 0
        else:
            over = len(text) - max_chars
            biggest = max((len(t) for t in files.values()), default=0)
            file_limit = max(min(file_limit, biggest) - over - 100, 500)
        text = assemble(rows, log_limit, program_limit, file_limit)
    return text
