"""running.json: what a study is running now, for `autoresearch status`, a dashboard, and the
next start after a kill -9 (which kills an orphaned run by its process group).

The file is `.autoresearch/<tag>/running.json`, written atomically (tmp + rename) by the loop
whenever what runs changes, and removed when nothing runs or the study stops. Its format (one
JSON object; readers must ignore keys they do not know):

    pid        int    the study's process (the file is stale when that process is gone)
    budget     float  the harness' time budget, seconds
    workers    int    slots of the executor;   executor  str  inline | local | ray
    trials     list   one object per trial in flight, oldest first:
        number       int    the trial's number (given when it was proposed)
        description  str    what the agent said it tried ("(agent is proposing)" before a run)
        commit       str    the commit it runs ("" until committed)
        base         str    the best commit it was proposed on (or re-based onto)
        rebased      bool   re-based onto a newer best before this run
        since        float  unix time this run started
        worker       str    the executor's slot (inline-0, local-1, a Ray node's pid)
        child_pgid   int    the run's process group, where the loop sees it (inline executor)
    and, for readers of the one-trial format, the first trial's fields again at the top level.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

NAME = "running.json"


def path(ledger_dir: Path) -> Path:
    return Path(ledger_dir) / NAME


def write(ledger_dir: Path, trials: list[dict], **fields) -> None:
    """Record the trials in flight (none: remove the file)."""
    p = path(ledger_dir)
    if not trials:
        p.unlink(missing_ok=True)
        return
    info = dict(trials[0], pid=os.getpid(), **fields, trials=trials)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, p)


def clear(ledger_dir: Path) -> None:
    path(ledger_dir).unlink(missing_ok=True)


def _load(ledger_dir: Path) -> dict | None:
    try:
        return json.loads(path(ledger_dir).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (ProcessLookupError, ValueError, TypeError, OverflowError):
        return False
    except PermissionError:
        return True


def read(ledger_dir: Path) -> dict | None:
    """What runs now, if the process that wrote running.json is alive; else None."""
    info = _load(ledger_dir)
    return info if info and alive(info.get("pid", 0)) and int(info.get("pid", 0)) > 0 else None


def orphans(ledger_dir: Path) -> tuple[int | None, list[int]]:
    """(pid of a live study that owns the file, or None; process groups a dead one left running).
    A stale file (its study is dead) is removed."""
    info = _load(ledger_dir)
    if not info:
        return None, []
    if alive(info.get("pid")) and info.get("pid") != os.getpid():
        return int(info["pid"]), []
    groups = {t.get("child_pgid") for t in (info.get("trials") or [info])} | {info.get("child_pgid")}
    clear(ledger_dir)
    return None, [int(g) for g in groups if g and alive(g)]


def update(ledger_dir: Path, runs: list[tuple], proposing: tuple, last: str = "", **fields) -> str:
    """Write the loop's runs in flight, (number, description, commit, base, rebased, since, slot, pgid)
    each, or the proposal being made when none runs; only when it changed since `last` (returned)."""
    trials = []
    for number, description, commit, base, rebased, since, slot, pgid in sorted(runs, key=lambda r: r[5]):
        entry = {"number": number, "description": description, "commit": commit, "base": base, "rebased": rebased,
                 "since": since, "worker": f"{fields.get('executor', '')}-{slot}" if slot is not None else ""}
        if pgid is not None:
            entry["child_pgid"] = pgid
        trials.append(entry)
    if proposing[0] is not None and not trials:
        trials.append({"number": proposing[0], "description": "(agent is proposing)", "since": proposing[1]})
    text = json.dumps([trials, fields], default=str)
    if text != last:
        write(ledger_dir, trials, **fields)
    return text
