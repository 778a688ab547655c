"""Pruning: a run whose training curve falls behind the best's by more than the noise allows is stopped.

The harness prints cheap progress lines while it trains, one per tenth of its time budget:

    progress: 0.40 loss: 3.210100        (fraction of the budget, smoothed train loss)

Every run's curve (fraction -> loss, and the wall seconds it took to get there) is kept with its
trial (`extra["curves"]`, one list per run). A study with `prune = true` hands each trial's first
run a Reference (picklable: it travels with the Job to a worker process or a Ray node): the best's
curve (the mean of its runs) and the baseline repeats' curves (their spread is the noise). Where
the run executes, a Watch reads its progress lines, keeps its curve, and asks the rule at each one;
the rule's answer stops the run through the runner (its process group is killed, `killed =
"pruned"`), and the run becomes a DISCARD whose reason starts "pruned at 40%: ...". Baseline
runs, re-runs of the best and re-runs of a candidate (close calls, re-based ones) are never pruned,
nor is a change of code: a trial is compared with the best only when its editable files are the
best's but for the values of their knobs (comparable()).

The rule, at fraction f >= `after` (0.2), for a run whose gap to the best there is
gap(f) = loss(f) - best(f): prune when

    gap(f) > sigma x noise(f) x sqrt(1 + 1/n_best)           (behind by more than the noise allows)
    and gap(f) > gap(f') - noise(f)                          (and not catching up since its last point f')
    noise(f) = max(pooled relative sd of the repeats, floor) x best(f)

(one run against the mean of the best's n_best runs). The noise is pooled: the repeats' deviations
from their code's mean curve at every judged fraction, relative to it, make one sd (with 3 repeats and
8 fractions, 16 degrees of freedom; the sd at one fraction alone has 2, and it swung between 0.4% and
1.6% of the loss from one point to the next on the cpu profile, which made the verdicts arbitrary).
The repeats are the baseline's runs and those of every trial run more than once so far (close calls),
as the judge pools the final values: three baseline runs measure the spread poorly (in four cpu
studies the baseline alone said 0.86-1.89% of the loss, every repeated code pooled 0.85-0.99%).
`floor` (1%) stands in where the repeats agree too well (seeded runs) or there is one, and bounds
what a code whose printed loss means something else can do to the pooled figure. The second
condition is for changes that are behind early by design and then close the gap (a warmup keeps the
LR low at the start, whatever it does for the final value): a run gaining on the best by more than
the noise since its last point goes on. The rule is an Optuna pruner (`band_pruner()`, an
`optuna.pruners.BasePruner` like Optuna's ThresholdPruner, with a threshold per step from the
reference and the trial's own previous step): the Watch reports each point to an in-memory Optuna
trial (step = percent of the budget) and asks `trial.should_prune()`.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from dataclasses import dataclass

from autoresearch.trial import TrialState


@dataclass(frozen=True)
class Reference:
    """What a running trial is compared with, at each fraction of the budget."""
    best: tuple                  # ((fraction, mean loss of the best's runs), ...)
    baseline: tuple              # ((fraction, (loss of each baseline run, ...)), ...)
    best_runs: int = 1
    sigma: float = 1.0           # (a study passes its Config's prune_sigma and prune_floor: 2 and 0.01)
    floor: float = 0.01          # relative: the noise is at least this fraction of the best's loss
    after: float = 0.2           # no verdict before this fraction of the budget
    repeats: tuple = ()          # other codes run more than once in the study (close calls), each as baseline

    def spread(self) -> float:
        """The repeats' pooled sd at the judged fractions, relative to each code's mean curve (0: < 2 runs):
        the baseline's runs and every other code's that was run again, as the judge pools the values."""
        sq, df = 0.0, 0
        for group in (self.baseline, *self.repeats):
            for f, losses in group:
                if f >= self.after and len(losses) >= 2:
                    mean = statistics.fmean(losses)
                    sq += sum(((x - mean) / mean) ** 2 for x in losses)
                    df += len(losses) - 1
        return math.sqrt(sq / df) if df else 0.0

    def limit(self, fraction: float) -> tuple[float, float, float] | None:
        """(best's loss, noise, the loss above which a run is behind) at this fraction, or None."""
        best = dict(self.best).get(fraction)
        if best is None or fraction < self.after:
            return None
        noise = max(self.spread(), self.floor) * abs(best)
        return best, noise, best + self.sigma * noise * math.sqrt(1 + 1 / max(1, self.best_runs))

    def check(self, fraction: float, loss: float, before: tuple[float, float] | None = None) -> str:
        """'' (go on), or why a run at `loss` at this fraction is pruned; `before`: the run's previous point
        (fraction, loss), if it had one."""
        lim = self.limit(fraction)
        if lim is None or not loss > lim[2]:       # (a NaN loss is the run's own crash, not a verdict)
            return ""
        best, noise, limit = lim
        gap, was = loss - best, None
        then = dict(self.best).get(before[0]) if before is not None else None
        if then is not None:
            was = before[1] - then
            if not gap > was - noise:               # catching up: a schedule that starts slow, say
                return ""
        n = max((len(v) for _, v in self.baseline), default=0)
        more = sum(max((len(v) for _, v in g), default=0) for g in self.repeats)
        also = f" and {more} run(s) of {len(self.repeats)} trial(s) run more than once" if self.repeats else ""
        return (f"pruned at {fraction:.0%}: train loss {loss:.4f} > {limit:.4f} (the best's {best:.4f} + "
                f"{self.sigma:g} x noise {noise:.4f}, pooled from {n} baseline run(s){also})"
                + (f", not catching up (behind by {gap:.4f}, by {was:.4f} at {before[0]:.0%})" if was is not None
                   else ""))


_BAND: type | None = None


def band_pruner(reference: Reference):
    """A BandPruner (an optuna.pruners.BasePruner) over a Reference: a trial's intermediate value at step s
    (percent of the budget) is pruned above the reference's limit there; its `reason` says why. (The class
    is made on first use: importing optuna costs about 0.2 s that a study without pruning need not pay.)"""
    global _BAND
    if _BAND is None:
        import optuna

        class BandPruner(optuna.pruners.BasePruner):
            def __init__(self, reference: Reference):
                self.reference, self.reason = reference, ""

            def prune(self, study, trial) -> bool:
                step = trial.last_step
                if step is None:
                    return False
                values = trial.intermediate_values
                prev = max((s for s in values if s < step), default=None)
                before = (prev / 100, values[prev]) if prev is not None else None
                self.reason = self.reference.check(step / 100, values[step], before)
                return bool(self.reason)
        _BAND = BandPruner
    return _BAND(reference)


class Watch:
    """Reads one run's progress (the runner's on_progress hook), keeps its curve, and answers the
    reason to stop it ('' to go on). `then`: another progress hook (the live line)."""

    def __init__(self, reference: Reference | None = None, then=None):
        self.reference, self.then = reference, then
        self.curve: dict[float, tuple[float, float]] = {}     # fraction -> (loss, wall seconds since start)
        self.reason = ""
        self.start = time.monotonic()
        self._trial = self._pruner = None

    def __call__(self, progress) -> str:
        if self.then is not None:
            self.then(progress)
        f, loss = getattr(progress, "fraction", None), progress.loss
        if f is None or loss is None or f in self.curve:
            return self.reason
        self.curve[f] = (loss, round(time.monotonic() - self.start, 2))
        if self.reference is not None and not self.reason and math.isfinite(loss):
            self.reason = self._ask(f, loss)
        return self.reason

    def _ask(self, fraction: float, loss: float) -> str:
        if self._trial is None:
            import optuna
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self._pruner = band_pruner(self.reference)
            self._trial = optuna.create_study(direction="minimize", pruner=self._pruner).ask()
        self._trial.report(loss, round(fraction * 100))
        return self._pruner.reason if self._trial.should_prune() else ""

    def settle(self, m):
        """The Measurement with this run's curve; a run the runner stopped for us is a DISCARD with the reason."""
        curve = tuple((f, loss, s) for f, (loss, s) in sorted(self.curve.items()))
        if self.reason and m.state == TrialState.CRASH and m.result.killed == "pruned":
            return dataclasses.replace(m, state=TrialState.DISCARD, reason=self.reason, curve=curve)
        return dataclasses.replace(m, curve=curve)


# ---------------------------------------------------------------------- the study's side
def record(cand) -> dict:
    """For the trial's extra: the curves of its runs of the current code (or of its failed run), and the
    prune's numbers when it was pruned."""
    runs = cand.runs[-len(cand.values):] if cand.values else cand.runs[-1:]
    curves = [[list(p) for p in m.curve] for m in runs if getattr(m, "curve", ())]
    out = {"curves": curves} if curves else {}
    if cand.failed is not None and cand.failed.reason.startswith("pruned at "):
        out["pruned"] = cand.failed.reason
    return out


def curves_of(trial) -> list[dict]:
    """fraction -> loss, one dict per recorded run of the trial."""
    return [{float(p[0]): float(p[1]) for p in c} for c in ((trial.extra or {}).get("curves") or []) if c]


def by_fraction(runs) -> tuple:
    """((fraction, (loss of each run there, ...)), ...) from one code's curves (curves_of)."""
    return tuple((f, tuple(c[f] for c in runs if f in c)) for f in sorted(set().union(*runs)))


def reference(trials, best, config) -> Reference | None:
    """The reference for a trial's run: the best's curves against the noise of the repeats, the baseline's
    and those of every other trial run more than once (None: no curves, or fewer than two baseline runs
    with one: no measured noise, no verdict)."""
    base = next((t for t in trials if t.kind == "baseline"), None)
    if base is None or best is None:
        return None
    runs = curves_of(base)
    best_runs = curves_of(best) if best.number != base.number else runs
    if len(runs) < 2 or not best_runs:
        return None
    shared = set.intersection(*(set(c) for c in best_runs))
    means = tuple((f, statistics.fmean(c[f] for c in best_runs)) for f in sorted(shared))
    repeats = tuple(by_fraction(c) for t in trials if t.number != base.number and len(c := curves_of(t)) >= 2)
    return Reference(means, by_fraction(runs), len(best_runs), config.prune_sigma, config.prune_floor,
                     config.prune_after, repeats)


def for_run(study, cand, kind: str) -> Reference | None:
    """A Reference for this run of cand, or None: pruning off, a baseline run, a re-run of the best, not
    the candidate's first run (a close call's re-run, a re-based candidate's run again), or a change of
    code rather than of knob values (comparable())."""
    if (not getattr(study.config, "prune", False) or cand is None or cand.kind == "baseline" or kind == "best"
            or cand.submitted > 1 or study.best is None):
        return None
    ref = reference(study.trials, study.best, study.config)
    return ref if ref is not None and comparable(study, cand.commit, study.best.commit) else None


def comparable(study, commit: str, best: str) -> bool:
    """Whether commit's editable files are best's but for their knobs' values: then the train loss its
    progress lines print means what the best's meant, and the curves compare. A change of code may
    change what that loss is (a new loss term, another tokenizer, a different smoothing), so its curve
    says nothing against the best's: it runs to the end and its value is judged as always."""
    from autoresearch import knobs
    from autoresearch.errors import WorkspaceError
    if not commit or not best:
        return False
    try:
        for f in study.harness.editable:
            mine, theirs = (study.ws.git("show", f"{c}:{f}") for c in (commit, best))
            if f.endswith(".py"):
                mine, theirs = knobs.skeleton(mine), knobs.skeleton(theirs)
            if mine != theirs:
                return False
    except (WorkspaceError, SyntaxError, ValueError):      # missing, unparsable: not comparable
        return False
    return True
