"""judge.py: keep / discard / confirm from measured noise; upstream's greedy rule."""

from __future__ import annotations

import math

import pytest

from autoresearch.judge import CONFIRM, DISCARD, KEEP, Judge, greedy


def test_judge_uses_measured_noise():
    j = Judge(sigma=2.0, confirm_band=0.5, max_repeats=3)
    j.observe([1.00, 1.02, 0.98])
    assert j.sd == pytest.approx(0.02)
    best = [1.00, 1.02, 0.98]
    assert j.decide([0.90], best).verdict == KEEP          # gain 0.1 >> 2 * 0.02 * 1.15
    assert j.decide([1.01], best).verdict == DISCARD       # worse
    d = j.decide([0.955], best)                            # gain 0.045 ~ threshold 0.046
    assert d.verdict == CONFIRM and d.threshold == pytest.approx(2 * 0.02 * math.sqrt(1 + 1 / 3))
    assert j.decide([0.955, 0.955, 0.955], best).verdict == KEEP   # threshold shrinks with n
    assert greedy([0.999], best) and not greedy([1.01], best)


def test_judge_maximize_and_min_delta():
    j = Judge(direction="maximize", min_delta=0.5)
    assert j.decide([10.6], [10.0]).verdict == KEEP
    assert j.decide([10.4], [10.0]).verdict == DISCARD


def test_judge_prior_noise_counts_as_two_degrees_of_freedom():
    j = Judge(prior_sd=1.0)
    assert j.sd == 1.0
    j.observe([5.0, 5.0])                      # one dof of zero spread
    assert j.sd == pytest.approx((2 / 3) ** 0.5)
    j.fit([[1.0, 3.0]])                        # refit: ss 2, dof 1
    assert j.sd == pytest.approx(((2 + 2) / 3) ** 0.5)
    assert Judge().sd == 0.0
