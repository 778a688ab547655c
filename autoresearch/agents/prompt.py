"""The prompt every LLM agent gets, and the correction loop of API agents.

`build(context)` is the ONE function that turns a Context into text: the rules, program.md,
the editable files, a compact results table (last ~30 trials), the best trial, near misses
(discarded trials closest to the best), the measured noise and the log tail of the last
crash. Everything is bounded: `max_chars` caps the whole text (history, log tail, program
and files shrink in that order), so a small model's context window never fills.

The answer formats of API agents, and how they are parsed and applied, are in edits.py.
"""

from __future__ import annotations

import math

from autoresearch.agents.edits import (  # noqa: F401  (re-exported for the agents)
    SCHEMA, AnswerError, _one_line, apply_edits, description_from_text, parse_answer)

MAX_CHARS = 60_000        # whole prompt; ~15k tokens
HISTORY_ROWS = 30         # last N trials in the results table
NEAR_MISSES = 3
LOG_CHARS = 2_000         # tail of the last crash log

# ---------------------------------------------------------------------------- building
def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _state(trial) -> str:
    return getattr(trial.state, "value", str(trial.state))


def _row(trial) -> str:
    """One trial: its outcome, its one-line hypothesis (the description, and the agent's reason where it
    gave one), and for a failure why it failed: the study's memory, shown to every LLM agent."""
    text = f"{trial.number:>4}  {_state(trial):<8} {_fmt(trial.value):>10}  {_one_line(trial.description)}"
    why = ((getattr(trial, "extra", None) or {}).get("agent") or {}).get("why")
    if why:
        text += f" (why: {_one_line(str(why), 160)})"
    if _state(trial) in ("crash", "timeout", "invalid") and trial.reason:
        text += f" -> {_one_line(trial.reason.splitlines()[0], 120)}"
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
                     "one line: `DESCRIPTION: <one line saying what you tried and why you expect it to help>`.")
    else:
        lines.append(
            "Answer with ONE JSON object and nothing else:\n"
            '{"description": "<one line: what you tried and why you expect it to help>", "edits": [{"file": "<editable file>", '
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
