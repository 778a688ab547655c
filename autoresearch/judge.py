"""Judge: keep or discard, from the candidate's measurements, the best's, and measured noise.

The noise of the metric is measured, not assumed: every group of repeated measurements of
the same code (the baseline's k runs, confirm runs) feeds a pooled standard deviation.
A candidate is kept only when its mean beats the best's mean by more than `sigma` standard
errors of the difference (and by `min_delta`). A close call, within `confirm_band` standard
errors of that threshold, asks for another measurement instead of a verdict.
Upstream's rule, for comparison, is `greedy`: keep whatever prints a better number.

Futility: a close call is measured again only while it has a chance. With `futility` set, a confirm
becomes a discard when the predictive probability that the candidate is kept once it has
`max_repeats` runs (its mean so far, the noise of the runs still to come and of the mean itself;
the best's runs grown beside it when `rerun_best`) is below `futility`. A close call whose first
run was a lucky draw of a change that gains nothing then ends after two or three runs instead of
four (and the best's re-runs beside them).

Zero noise is not trusted: when every repeat was identical (a seeded, deterministic script) or
there was one run only, the sd says nothing about how much a gain must be to be real, so the
judge keeps only gains above a minimum effect: `min_delta` when set, else `prior_sd` (an assumed
sd) when set, else ZERO_NOISE_FLOOR (0.1%) of the best's value. `describe()` says which.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

KEEP, DISCARD, CONFIRM = "keep", "discard", "confirm"
PRIOR_DOF = 2     # weight of an assumed prior_sd, in degrees of freedom
ZERO_NOISE_FLOOR = 1e-3   # with no measured noise: keep gains above this fraction of the best's value


@dataclass(frozen=True)
class Decision:
    verdict: str          # keep | discard | confirm
    improvement: float    # best mean - candidate mean, sign-adjusted so > 0 is better
    threshold: float      # the improvement needed to keep
    sd: float             # the noise sd used
    n: tuple[int, int]    # measurements of (candidate, best)
    chance: float | None = None   # a close call: the predictive probability of a keep at max_repeats runs

    @property
    def margin(self) -> float:
        return self.improvement - self.threshold

    def explain(self) -> str:
        text = (f"{self.verdict}: gain {self.improvement:+.6f} vs threshold {self.threshold:.6f} "
                f"(noise sd {self.sd:.6f}, n={self.n[0]} vs {self.n[1]})")
        if self.chance is None:
            return text
        if self.verdict == CONFIRM:
            return f"{text}; its chance of a keep if run again: {self.chance:.0%}"
        return f"{text}; a close call with a {self.chance:.0%} chance of a keep: not run again"


def greedy(candidate: list[float], best: list[float], direction: str = "minimize") -> bool:
    """Upstream's rule: keep if the (last) number is better than the best's at all."""
    c, b = candidate[-1], statistics.fmean(best)
    return c < b if direction == "minimize" else c > b


class Judge:
    def __init__(self, direction: str = "minimize", sigma: float = 2.0, min_delta: float = 0.0,
                 confirm_band: float = 1.5, max_repeats: int = 4, prior_sd: float = 0.0,
                 futility: float = 0.0, rerun_best: bool = False):
        self.direction = direction
        self.futility = futility
        self.rerun_best = rerun_best
        self.sigma = sigma
        self.min_delta = min_delta
        self.confirm_band = confirm_band
        self.max_repeats = max(1, max_repeats)
        self.prior_sd = prior_sd
        self._ss = 0.0        # pooled sum of squared deviations from each group's mean
        self._dof = 0         # pooled degrees of freedom

    @classmethod
    def from_config(cls, config, direction: str = "minimize") -> "Judge":
        c = config
        return cls(direction, c.sigma, c.min_delta, c.confirm_band, c.max_repeats, c.prior_sd, c.futility,
                   c.rerun_best)

    def fit(self, groups) -> None:
        """Estimate the noise afresh from every group of repeats (a group may have grown)."""
        self._ss, self._dof = 0.0, 0
        for values in groups:
            self.observe(values)

    def observe(self, values) -> None:
        """Add one group of repeated measurements of the same code to the noise estimate."""
        values = [v for v in values if v is not None and math.isfinite(v)]
        if len(values) >= 2:
            mean = statistics.fmean(values)
            self._ss += sum((v - mean) ** 2 for v in values)
            self._dof += len(values) - 1

    @property
    def sd(self) -> float:
        """Pooled sd of the repeats; an assumed prior_sd counts as PRIOR_DOF degrees of freedom, so a
        few identical repeats do not drive the noise to zero at once."""
        if self.prior_sd > 0:
            return math.sqrt((self.prior_sd ** 2 * PRIOR_DOF + self._ss) / (PRIOR_DOF + self._dof))
        return math.sqrt(self._ss / self._dof) if self._dof else 0.0

    @property
    def dof(self) -> int:
        return self._dof

    @property
    def zero_noise(self) -> bool:
        """No noise measured (identical repeats, or none) and none assumed: the sd cannot set a threshold."""
        return self.sd == 0.0

    def floor(self, best_value: float) -> float:
        """The minimum effect to keep: min_delta, or with zero noise and no min_delta the fallback."""
        if self.min_delta or not self.zero_noise:
            return self.min_delta
        return ZERO_NOISE_FLOOR * abs(best_value)

    def describe(self, runs: int, values=()) -> str:
        """The baseline's noise line (shown by status), warning when the noise cannot be trusted."""
        text = f"noise sd {self.sd:.6f} from {runs} run{'' if runs == 1 else 's'}"
        if not self.zero_noise:
            return text
        why = "one run measures no noise" if runs < 2 else "identical repeats (a deterministic run?)"
        if self.min_delta:
            rule = f"keeping only gains above min_delta {self.min_delta:g}"
        else:
            best = statistics.fmean(values) if values else 0.0
            rule = (f"keeping only gains above {self.floor(best):.6g} ({ZERO_NOISE_FLOOR:.1%} of the baseline); "
                    f"set min_delta or prior_sd in [study] to choose")
        return f"{text}; WARNING: {why}: {rule}"

    def decide(self, candidate: list[float], best: list[float]) -> Decision:
        nc, nb = len(candidate), len(best)
        if nc == 0 or nb == 0:
            raise ValueError("decide() needs at least one measurement of each")
        sign = 1.0 if self.direction == "minimize" else -1.0
        best_mean = statistics.fmean(best)
        improvement = sign * (best_mean - statistics.fmean(candidate))
        threshold = self.threshold(nc, nb, best_mean)
        band = self.confirm_band * self._se(nc, nb)
        if improvement <= 0 or improvement < threshold - band:
            verdict = DISCARD
        elif improvement > threshold + band:
            verdict = KEEP
        elif nc < self.max_repeats:
            verdict = CONFIRM
        else:
            verdict = KEEP if improvement > threshold else DISCARD
        chance = None
        if verdict == CONFIRM and self.futility > 0:
            chance = self.chance(improvement, nc, nb, best_mean)
            verdict = DISCARD if chance < self.futility else CONFIRM
        return Decision(verdict, improvement, threshold, self.sd, (nc, nb), chance)

    def _se(self, nc: int, nb: int) -> float:
        """The standard error of the difference of the means of nc and nb runs."""
        return self.sd * math.sqrt(1.0 / nc + 1.0 / nb)

    def threshold(self, nc: int, nb: int, best_mean: float) -> float:
        """The gain nc runs of a candidate must show over nb runs of the best to be kept."""
        return max(self.floor(best_mean), self.sigma * self._se(nc, nb))

    def chance(self, improvement: float, nc: int, nb: int, best_mean: float) -> float:
        """The predictive probability that a candidate with nc runs, its gain `improvement` so far, is kept
        once it has max_repeats runs. Its mean then is its mean now and the runs to come, each with the
        noise sd, its true mean known to sd/sqrt(nc) (a flat prior): sd^2 (N - nc) / (N nc) about its
        mean now. The best's mean moves the same way with its re-runs beside it (rerun_best: one per run,
        up to 2 x max_repeats, as the scheduler re-runs it), and the threshold then is the one for N runs
        against the best's runs then."""
        n, more = self.max_repeats, self.max_repeats - nc
        if more <= 0 or self.sd == 0.0:
            return 1.0 if improvement > self.threshold(nc, nb, best_mean) else 0.0
        nb_then = max(nb, min(nb + more, 2 * n)) if self.rerun_best else nb
        threshold = self.threshold(n, nb_then, best_mean)
        spread = self.sd * math.sqrt(more / (n * nc) + (nb_then - nb) / (nb_then * nb))
        return 0.5 * (1.0 + math.erf((improvement - threshold) / (spread * math.sqrt(2.0))))


def overfits(candidate: float, best: float, holdout_sd: float, direction: str = "minimize",
             sigma: float = 2.0) -> bool:
    """A val gain that does not carry over: the candidate's holdout score is worse than the best's by
    more than sigma standard errors of the difference of two single holdout runs (holdout_sd from the
    baseline's repeats). The agent is told only that, never the numbers."""
    worse = candidate - best if direction == "minimize" else best - candidate
    return worse > sigma * math.sqrt(2.0) * holdout_sd
