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


def test_futility_discards_a_close_call_with_little_chance_of_a_keep():
    j = Judge(sigma=2.0, confirm_band=1.5, max_repeats=4, futility=0.2, rerun_best=True)
    j.observe([1.00, 1.02, 0.98])                          # sd 0.02
    best = [1.00, 1.02, 0.98]
    close = j.decide([0.98], best)                         # gain 0.02 against threshold 0.046 at n=1: close
    assert close.verdict == CONFIRM and 0.2 < close.chance < 1.0
    assert f"its chance of a keep if run again: {close.chance:.0%}" in close.explain()
    # the same mean after 3 runs: the threshold at 4 runs is out of reach of what one more run can do
    late = j.decide([0.98, 0.98, 0.98], best)
    assert late.verdict == DISCARD and late.chance < 0.2 and "not run again" in late.explain()
    off = Judge(sigma=2.0, confirm_band=1.5, max_repeats=4)
    off.observe([1.00, 1.02, 0.98])
    assert off.decide([0.98, 0.98, 0.98], best).verdict == CONFIRM and off.decide([0.98], best).chance is None
    # the chance grows with the gain, and with the runs of the best still to come (rerun_best)
    chances = [j.chance(g, 2, 3, 1.0) for g in (0.0, 0.01, 0.02, 0.03, 0.04)]
    assert chances == sorted(chances) and chances[0] < 0.05 and chances[-1] > 0.8
    still = Judge(sigma=2.0, max_repeats=4, futility=0.2)
    still.observe([1.00, 1.02, 0.98])
    assert still.chance(0.02, 2, 3, 1.0) < j.chance(0.02, 2, 3, 1.0)
    assert j.chance(0.05, 4, 3, 1.0) == 1.0 and j.chance(-0.01, 4, 3, 1.0) == 0.0   # no runs to come
