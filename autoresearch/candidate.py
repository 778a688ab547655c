"""Candidate: one proposal on its way to becoming a recorded Trial; the record being built.

The loop fills it in as things happen (proposed, checked, committed, each run measured, re-based,
judged) and hands it to `Study.tell()`, which turns it into the frozen Trial and records it. Its
number is given when it is proposed, so its logs, models and AUTORESEARCH_TRIAL are final from
the first run on.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch.trial import TrialState


@dataclass
class Candidate:
    number: int                       # the trial's number, given when proposed
    base: str                         # the commit it was proposed (or last re-based) on: the best's, or a node's
    kind: str = "trial"               # "trial" or "baseline"
    path: Path | None = None          # its worktree
    commit: str = ""
    description: str = ""
    proposal: object = None           # the agent's Proposal (tokens, cost, extra)
    agent_seconds: float = 0.0
    agent_failed: bool = False
    started: float = field(default_factory=time.time)
    code_hash: str = ""
    knobs: dict | None = None         # the UPPER_CASE constants of its editable files, as committed
    unrun: tuple | None = None        # (state, reason): it never runs
    twin_value: float | None = None   # the value of the earlier trial with the same code
    runs: list = field(default_factory=list)         # every Measurement of it, stale ones included
    values: list = field(default_factory=list)       # values of `commit` as committed (current base)
    best_values: list = field(default_factory=list)  # re-runs of the best it was judged against
    best_runs: list = field(default_factory=list)    # ... their Measurements
    best_number: int | None = None                   # ... that best's trial number
    rebased: bool = False
    improves: int | None = None       # tree search: the non-best trial whose code it changes (tree.py)
    stale: list = field(default_factory=list)        # {"base", "commit", "values"} per re-base
    worker: str = ""
    node: str = ""
    running_since: float = 0.0
    pending: int = 0                  # its jobs in flight (its own run, a re-run of the best)
    submitted: int = 0                # its own runs started so far (names its logs)
    best_submitted: int = 0           # re-runs of the best started beside it
    wanted: int = 1                   # runs still to start before the next verdict (baseline: k)
    at_risk: bool = False             # conflicts with a run in flight: lost if that run is kept
    risk_checked: bool = False
    failed: object = None             # the first Measurement without a value (ends the candidate)
    holdout: float | None = None
    model: Path | None = None         # the saved model of its last run of record (local executors)
    models: list = field(default_factory=list)   # the baseline: every repeat's model (holdout noise)
    holdout_sd: float | None = None   # the baseline: sd of its repeats' holdout scores
    state: TrialState | None = None   # the verdict, once there is one
    reason: str = ""
    margin: float | None = None

    @property
    def value(self) -> float | None:
        return statistics.fmean(self.values) if self.values else self.twin_value

    def run_name(self, tag: str, best: bool = False) -> str:
        """The next run's file stem: <tag>-<n> for its first run, <tag>-<n>.<i> for the i-th after,
        <tag>-<n>.best<k> for the k-th re-run of the best beside it."""
        if best:
            return f"{self.tag_stem(tag)}.best{self.best_submitted}"
        return self.tag_stem(tag) + (f".{self.submitted}" if self.submitted else "")

    def tag_stem(self, tag: str) -> str:
        return f"{tag}-{self.number}"

    def ran(self) -> bool:
        return bool(self.commit) and bool(self.runs) and self.unrun is None

    def notes(self) -> dict:
        """What its record adds: which node it improved (tree search), runs re-run as disturbed, and the
        mean GPU utilisation of its runs where an NVIDIA GPU was measured."""
        out = {"improves": self.improves} if self.improves is not None else {}
        gpu = [m.result.gpu_util for m in self.runs if m.result.gpu_util is not None]
        if gpu:
            out["gpu_util"] = round(sum(gpu) / len(gpu), 1)
        return {**out, **(getattr(self, "disturbed", None) or {})}

    def note_disturbed(self, why: str, runs: int = 1) -> int:
        """Its record notes runs that other load starved (measured again); returns how many so far."""
        note = self.disturbed = getattr(self, "disturbed", None) or {"disturbed_runs": 0}
        note["disturbed_runs"] += runs
        note["disturbed"] = why
        return note["disturbed_runs"]

    def drop(self, indices, why: str) -> int:
        """The baseline's runs at these indices leave it, with their values and models (other load starved
        them: they are measured again); its record notes them. Returns how many left."""
        for i in sorted(indices, reverse=True):
            self.runs.pop(i)
            self.values.pop(i)
            self.models.pop(i).unlink(missing_ok=True)
        self.note_disturbed(why, len(indices))
        return len(indices)

    def seconds(self) -> tuple[float, float]:
        """(wall seconds, reported training seconds) of every run it caused."""
        runs = self.runs + self.best_runs
        wall = sum(m.result.seconds for m in runs)
        training = sum(float(m.result.metric("training_seconds") or 0.0) for m in runs)
        return wall, training

    def last_run(self):
        """The Measurement its record describes: the failure, or the last run of the current code."""
        if self.failed is not None:
            return self.failed
        return self.runs[-1] if self.runs and self.values else None
