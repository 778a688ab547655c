"""Noise: how much the metric varies between runs of the same code, against what the profile expects.

The judge measures the noise (a pooled sd over every group of repeats); this module knows what a
quiet machine gives per profile, and says so when a measurement is far above it: the usual cause
is other load on the machine (another study, a build, a test suite), which makes the step count
of a fixed-time run jitter. A study on such noise keeps almost nothing. The live line, `status`
and the report all show the same sentence.
"""

from __future__ import annotations

# sd of val_bpb between runs of the same code on a quiet machine, per profile of the default harness
# (cpu: five 60 s runs on 2 cores gave 0.006 to 0.010). None: not measured, no warning.
EXPECTED_SD = {"cpu": 0.010, "smoke": None, "mps": None, "h100": None}
FAR_ABOVE = 3.0          # warn when the measured sd is more than this many times the expectation


def warning(sd: float, profile: str, dof: int = 1) -> str:
    """'' when the noise looks normal for the profile (or nothing is known); else one sentence."""
    expected = EXPECTED_SD.get(profile or "")
    if not expected or dof < 1 or sd <= FAR_ABOVE * expected:
        return ""
    return (f"noise sd {sd:.4f} is {sd / expected:.0f}x what the {profile} profile gives on a quiet machine "
            f"(about {expected:.3f}): likely other load on this machine; gains below ~{2 * sd:.3f} cannot be "
            f"told from noise")


def of_trials(trials) -> tuple[float, int]:
    """(pooled sd, degrees of freedom) over every recorded group of repeats."""
    from autoresearch.judge import Judge
    judge = Judge()
    judge.fit(t.values for t in trials if len(t.values) >= 2)
    return judge.sd, judge.dof


def warning_for(trials) -> str:
    """The warning for a recorded study (status, report), from its own repeats and profile."""
    if not trials:
        return ""
    sd, dof = of_trials(trials)
    return warning(sd, trials[0].profile, dof)
