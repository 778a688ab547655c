"""Limits: when an invocation of a study stops (trials recorded, wall hours, the tag's agent cost,
agent failures in a row). Given to `study.optimize()` or set in [study]; checked by the loop."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """When this invocation stops: trials recorded, wall hours, the tag's total agent cost, and
    agent failures in a row."""
    max_trials: int | None
    hours: float | None
    max_cost: float | None
    max_agent_failures: int
    start: float
    stall: int | None = None           # h13: trials in a row without a keep (--stall)

    def reason(self, recorded: int, spent: float, failures: int, now: float | None = None,
               since_keep: int = 0) -> str:
        """'' while none is reached; else why the study stops."""
        now = time.monotonic() if now is None else now
        if self.stall and since_keep >= self.stall:
            return f"{self.stall} trials in a row without a keep (--stall)"
        if failures >= self.max_agent_failures:
            return f"the agent failed {failures} times in a row"
        if self.max_trials is not None and recorded >= self.max_trials:
            return f"reached {self.max_trials} trials"
        if self.hours is not None and now - self.start >= self.hours * 3600:
            return f"reached {self.hours} hours"
        if self.max_cost is not None and spent >= self.max_cost:
            return f"reached the cost limit (${spent:.2f} of ${self.max_cost:.2f})"
        return ""


def since_keep(trials) -> int:
    """h13: trials since the last keep (the baseline is a keep), for --stall."""
    n = 0
    for t in reversed(trials):
        if getattr(t.state, "value", t.state) == "keep":
            break
        n += 1
    return n
