"""Tree: search beyond greedy. Each proposal may improve one of the top-k trials, not only the best.

`[study] search = "tree"` (default "greedy": every proposal improves the best), `tree_k = 3`.

The nodes are the k best judged trials that have code and a value (kept or discarded: a near miss is
a node). The rule that picks the node a proposal improves is a softmax over their values with the
measured noise as temperature:

    p(node) ~ exp(-gap / sd),   gap = how far its value is behind the best's (metric units, >= 0)

Why this rule: the judge cannot tell apart values within the noise, so a near miss one sd behind
is nearly as likely to be the true best; it is picked e^-1 = 0.37 times as often as the best, one
three sd behind 0.05 times, one far behind almost never. The noise sd is the scale that comes
with the study (a UCB bonus would need visit counts and an exploration constant with no natural
unit here). Where the noise is not measured (sd 0), the temperature is the judge's minimum effect
floor: 0.1% of the best's value. The draw is seeded by (seed, trial number): the same study picks
the same nodes.

A proposal on a non-best node (`Candidate.improves` = that node's number) runs on the node's code
and is judged against the best, not its node: not better than the best is a DISCARD; better (or a
close call) is re-based onto the best with the node's change and its own (`Worktrees.rebase`
squashes what lies between the common ancestor and the child) and run again, the path a stale
candidate takes, so the branch stays a line of kept commits. Its record says which node it
improved (`extra["improves"]`; a re-based one's first base in `extra["stale"]`).
"""

from __future__ import annotations

import math
import random

from autoresearch.trial import Trial, TrialState

FLOOR = 1e-3          # temperature where no noise is measured: this fraction of the best's value


def nodes(trials, best: Trial | None, k: int, direction: str = "minimize") -> list[Trial]:
    """The k best judged trials with code and a finite value, the best always first among them."""
    if best is None:
        return []
    sign = 1.0 if direction == "minimize" else -1.0
    pool = [t for t in trials if t.state in (TrialState.KEEP, TrialState.DISCARD) and t.commit
            and t.value is not None and math.isfinite(t.value) and t.number != best.number]
    pool.sort(key=lambda t: (sign * t.value, t.number))
    return [best] + pool[:max(0, k - 1)]


def weights(values, best_value: float, sd: float, direction: str = "minimize") -> list[float]:
    """Softmax weights (summing to 1) of nodes with these values: exp(-gap / temperature)."""
    temp = sd if sd and sd > 0 else FLOOR * max(abs(best_value), 1e-12)
    sign = 1.0 if direction == "minimize" else -1.0
    gaps = [max(0.0, sign * (v - best_value)) for v in values]
    raw = [math.exp(-g / temp) for g in gaps]
    total = sum(raw)
    return [w / total for w in raw]


def choose(trials, best: Trial | None, k: int, sd: float, seed: int, number: int,
           direction: str = "minimize") -> Trial | None:
    """The node trial `number` improves (the best itself with greedy search, k = 1, or one node)."""
    candidates = nodes(trials, best, k, direction)
    if len(candidates) <= 1 or best.value is None:
        return best
    w = weights([t.value for t in candidates], best.value, sd, direction)
    rng = random.Random(f"tree/{seed}/{number}")
    return rng.choices(candidates, weights=w, k=1)[0]


def node_for(study, number: int) -> Trial | None:
    """The node a proposal for trial `number` starts from under the study's `search` setting."""
    c = study.config
    if c.search != "tree" or study.best is None:
        return study.best
    return choose(study.trials, study.best, c.tree_k, study.judge.sd, c.seed, number, study.harness.direction)


def judged_against(study, cand) -> tuple[Trial, str]:
    """(the kept trial a measured candidate is judged against, how a reason names it): a child of a
    non-best node, not yet re-based, against the best; any other against its own base."""
    if cand.improves is not None and not cand.rebased:
        return study.best, "the best"
    return study.kept_at(cand.base), "its base"
