"""Trial and TrialState: the frozen record of one experiment.

A crash is not an exception but a trial with a state and a reason (and no value), so the loop,
the ledger and the reports treat every outcome alike.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field


class TrialState(str, enum.Enum):
    KEEP = "keep"          # beat the best by more than the noise allows; the branch advanced
    DISCARD = "discard"    # ran fine, not better (or a duplicate of earlier code)
    CRASH = "crash"        # non-zero exit, no summary, non-finite metric, out of memory
    TIMEOUT = "timeout"    # killed from outside past budget + allowance
    INVALID = "invalid"    # touched a read-only file, forged its score, no change, agent failure

    @property
    def tsv_status(self) -> str:
        """upstream's results.tsv knows keep / discard / crash only."""
        if self in (TrialState.KEEP, TrialState.DISCARD):
            return self.value
        return "crash"


@dataclass(frozen=True)
class Trial:
    number: int                      # 0, 1, ... given when proposed (the ledger may list them out of order)
    state: TrialState
    description: str
    commit: str = ""                 # commit the run measured ("" when nothing was run)
    parent: str = ""                 # the commit it was proposed on: the best's (a tree node's, tree.py)
    value: float | None = None       # metric of record (mean of repeats), None when none
    values: tuple[float, ...] = ()   # every measurement of this code (repeats, confirm runs)
    metrics: dict = field(default_factory=dict)   # the summary block of the last run
    seconds: float = 0.0             # wall seconds spent running (all repeats)
    training_seconds: float = 0.0    # summed training_seconds the harness reported
    reason: str = ""                 # why this state (crash tail, margin, what was touched)
    margin: float | None = None      # improvement over the best minus the keep threshold
    code_hash: str = ""              # hash of the editable files as run
    kind: str = "trial"              # "baseline" or "trial"
    agent: str = ""
    profile: str = ""
    tag: str = ""
    cost_usd: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    agent_seconds: float = 0.0
    log: str = ""                    # log path, relative to the workspace
    started: float = 0.0             # unix time
    ended: float = 0.0
    extra: dict = field(default_factory=dict)     # worker, node, base, rebased, stale, knobs, holdout, tail, ...

    @property
    def ran(self) -> bool:
        return bool(self.commit) and self.state in (TrialState.KEEP, TrialState.DISCARD)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["state"] = self.state.value
        d["values"] = list(self.values)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Trial":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["state"] = TrialState(kw["state"])
        kw["values"] = tuple(kw.get("values") or ())
        return cls(**kw)

    def replace(self, **kw) -> "Trial":
        return dataclasses.replace(self, **kw)
