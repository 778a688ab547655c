"""noise.py: the noise a profile expects on a quiet machine, and the warning when a study's is far above."""

from __future__ import annotations

from autoresearch import noise, report
from autoresearch.trial import Trial, TrialState


def _trials(values, profile="cpu"):
    base = Trial(number=0, state=TrialState.KEEP, description="baseline", kind="baseline", values=tuple(values),
                 value=sum(values) / len(values), profile=profile, reason="noise sd from 3 runs")
    return [base]


def test_quiet_noise_says_nothing_and_loud_noise_names_the_likely_cause():
    assert noise.warning(0.008, "cpu") == ""
    assert noise.warning(0.5, "h100") == ""              # no expectation for that profile: no guess
    w = noise.warning(0.136, "cpu")
    assert "0.1360" in w and "14x" in w and "cpu profile" in w and "other load on this machine" in w


def test_status_and_report_carry_the_warning():
    loud = _trials([1.80, 2.05, 1.93])                    # sd ~0.125, as measured on a loaded machine
    quiet = _trials([1.975, 1.981, 1.972])
    sd, dof = noise.of_trials(loud)
    assert dof == 2 and sd > 0.1
    text = report.summary(loud, tag="t")
    assert "warning   noise sd" in text and "other load" in text
    assert "warning" not in report.summary(quiet, tag="t")
