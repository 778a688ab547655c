"""Views: the ledger as the data the dashboard and report.html show.

`snapshot()` reads `.autoresearch/<tag>/trials.jsonl`, `running.json` and the running trial's log
into one JSON-able dict (trials with their deltas against the baseline and the best before them,
the running best, the noise, the lineage, the live training curve, a finalize ablation when there
is one); `detail()` adds one trial's diff against its parent and its log tail. Both only read:
git objects (never the index or the work tree) and files a study writes; a torn last line, a
missing file or a study killed mid-trial reads as what was recorded so far.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import time
from pathlib import Path

from autoresearch.trial import Trial, TrialState

LOGS = ".autoresearch/logs"
MAX_DIFF = 60_000       # characters of one diff a page shows
MAX_TAIL = 6_000        # characters of a log tail
_CURVE = re.compile(r"step\s+(\d+).*?loss:\s*([-+0-9.eE]+)")


class Source:
    """One workspace and tag, read-only: the files a study writes and the git objects it made."""

    def __init__(self, root, tag: str | None = None):
        from autoresearch.harness import Harness
        from autoresearch.workspace import Workspace
        self.ws = Workspace(root, tag=tag)
        self.root = self.ws.root
        self.tag = self.ws.tag
        self.harness = Harness.load(self.root)
        self.dir = self.root / ".autoresearch" / self.tag

    # ------------------------------------------------------------------ reading
    def trials(self) -> list[Trial]:
        from autoresearch.ledger import Ledger
        return Ledger(self.root, self.tag, self.harness.metric).load()

    def version(self) -> str:
        """Changes whenever something a page shows may have changed (ledger, running trial, its log)."""
        parts = []
        for p in (self.dir / "trials.jsonl", self.dir / "running.json", self.dir / "final.json"):
            try:
                st = p.stat()
                parts.append(f"{st.st_size}:{st.st_mtime_ns}")
            except OSError:
                parts.append("-")
        log = self._running_log(self.running())
        if log is not None:
            try:
                parts.append(str(log.stat().st_size))
            except OSError:
                pass
        return "/".join(parts)

    def running(self) -> list[dict]:
        from autoresearch.running import read as running
        info = running(self.dir)
        if not info:
            return []
        return [dict(r, pid=info.get("pid")) for r in (info.get("trials") or [info])]

    def _running_log(self, running: list[dict]) -> Path | None:
        if not running or running[0].get("number") is None:
            return None
        return newest_log(self.root, self.tag, running[0]["number"])

    def git_diff(self, a: str, b: str) -> str:
        if not (a and b):
            return ""
        from autoresearch.workspace import diff_text
        text = diff_text(self.root, a, b)
        return text[:MAX_DIFF] + ("\n... (cut)" if len(text) > MAX_DIFF else "")

    # ------------------------------------------------------------------ views
    def snapshot(self, details: bool = False) -> dict:
        trials = self.trials()
        running = self.running()
        snap = build(trials, self.harness.metric, self.harness.direction, self.tag)
        snap.update(profile=self.harness.profile, budget=self.harness.budget, updated=time.time(),
                    version=self.version(), root=str(self.root))
        snap["running"] = [dict(r, curve=curve(self._running_log([r]))) for r in running]
        try:
            snap["final"] = json.loads((self.dir / "final.json").read_text())
        except (OSError, json.JSONDecodeError):
            snap["final"] = None
        if details:
            snap["details"] = {str(t.number): self.detail(t.number, trials) for t in trials}
        return snap

    def detail(self, number: int, trials: list[Trial] | None = None) -> dict | None:
        trials = self.trials() if trials is None else trials
        t = next((t for t in trials if t.number == number), None)
        if t is None:
            return None
        diff = self.git_diff(t.parent, t.commit) if t.commit and t.commit != t.parent else ""
        log = self.root / t.log if t.log else newest_log(self.root, self.tag, number)
        return {"number": number, "diff": diff, "log_tail": tail(log), "reason": t.reason,
                "agent": t.extra.get("agent") or {}, "crash_tail": t.extra.get("tail", "")}


def newest_log(root: Path, tag: str, number) -> Path | None:
    """The trial's newest run log (a repeat's or a close call's), not the scorer's."""
    logs = [p for p in (Path(root) / LOGS).glob(f"{tag}-{number}*.log")
            if re.fullmatch(rf"{re.escape(tag)}-{number}(\.\d+)?\.log", p.name)]
    if not logs:
        return None
    return max(logs, key=lambda p: p.stat().st_mtime if p.exists() else 0)


def tail(path: Path | None, limit: int = MAX_TAIL) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def curve(path: Path | None, points: int = 400) -> list[list[float]]:
    """(step, loss) pairs from a training log's progress lines, thinned to about `points`."""
    if path is None:
        return []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        m = _CURVE.search(line)
        if m:
            try:
                loss = float(m.group(2))
            except ValueError:
                continue
            if math.isfinite(loss):
                out.append([int(m.group(1)), loss])
    stride = max(1, len(out) // points)
    return out[::stride] if stride > 1 else out


def _finite(v) -> float | None:
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def noise_sd(trials: list[Trial]) -> float:
    """The pooled sd of every group of repeats (what the judge measures)."""
    ss, dof = 0.0, 0
    for t in trials:
        vals = [v for v in t.values if _finite(v) is not None]
        if len(vals) >= 2:
            m = statistics.fmean(vals)
            ss += sum((v - m) ** 2 for v in vals)
            dof += len(vals) - 1
    return math.sqrt(ss / dof) if dof else 0.0


def with_best_reruns(trials: list[Trial]) -> list[Trial]:
    """A close call may have re-measured the best: those values belong to the best's trial (as the
    study reads them back on resume), so its mean and the noise are the judge's."""
    trials = list(trials)
    index = {t.number: i for i, t in enumerate(trials)}
    for t in list(trials):
        for number, values in (t.extra.get("best_reruns") or {}).items():
            i = index.get(int(number))
            if i is not None and values:
                grown = trials[i].values + tuple(values)
                trials[i] = trials[i].replace(values=grown, value=statistics.fmean(grown))
    return trials


def build(trials: list[Trial], metric: str, direction: str, tag: str) -> dict:
    """The page's data from the trials alone: rows with deltas, running best, counts, lineage."""
    trials = with_best_reruns(trials)
    baseline = next((t for t in trials if t.kind == "baseline" and t.value is not None), None)
    by_commit = {t.commit: t.number for t in trials if t.commit and t.state == TrialState.KEEP}
    rows, best, best_line, branching = [], None, [], False
    for t in trials:
        value = _finite(t.value) if t.ran or t.kind == "baseline" else None
        prior_best = best
        row = {
            "number": t.number, "state": t.state.value, "kind": t.kind, "description": t.description,
            "value": value, "values": [v for v in t.values if _finite(v) is not None], "runs": len(t.values),
            "reason": t.reason.splitlines()[0][:300] if t.reason else "", "seconds": round(t.seconds, 1),
            "cost": t.cost_usd, "agent": t.agent, "commit": t.commit[:12], "parent": t.parent[:12],
            "parent_number": by_commit.get(t.parent) if t.parent != t.commit else None,
            "holdout": _finite(t.extra.get("holdout")), "memory_mb": _finite(t.metrics.get("peak_vram_mb")),
            "margin": _finite(t.margin), "started": t.started, "ended": t.ended,
            "delta_baseline": None, "delta_best": None,
            "answer": _answer(t),
        }
        if value is not None and baseline is not None and t is not baseline:
            row["delta_baseline"] = value - baseline.value
        if value is not None and prior_best is not None and t is not baseline:
            row["delta_best"] = value - prior_best.value
        if t.kind != "baseline" and prior_best is not None and t.parent and t.parent != prior_best.commit:
            branching = True
        if t.state == TrialState.KEEP and value is not None:
            best = t          # a kept trial is the new best: the judge's rule, not a comparison here
        row["best_so_far"] = _finite(best.value) if best is not None else None
        if best is not None:
            best_line.append([t.number, best.value])
        rows.append(row)
    counts = {s.value: sum(1 for t in trials if t.state == s and t.kind != "baseline") for s in TrialState}
    return {
        "tag": tag, "metric": metric, "direction": direction, "trials": rows, "counts": counts,
        "baseline": None if baseline is None else {"number": baseline.number, "value": baseline.value,
                                                   "runs": len(baseline.values),
                                                   "holdout": _finite(baseline.extra.get("holdout"))},
        "best": None if best is None else {"number": best.number, "value": best.value,
                                           "description": best.description,
                                           "holdout": _finite(best.extra.get("holdout"))},
        "noise_sd": noise_sd(trials), "best_line": best_line, "branching": branching,
        "cost": sum(t.cost_usd for t in trials),
    }


def _answer(t: Trial) -> str:
    """What the agent said or reasoned, where its proposal recorded it."""
    agent = t.extra.get("agent") or {}
    for key in ("answer", "reasoning", "rationale", "result", "message", "text"):
        v = agent.get(key)
        if isinstance(v, str) and v.strip():
            return v.strip()[:4000]
    return ""
