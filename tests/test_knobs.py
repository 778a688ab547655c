"""knobs.py: find and rewrite UPPER_CASE literal constants."""

from __future__ import annotations

import pytest

from autoresearch import knobs


SRC = '''"""doc"""
import os
DEPTH = 4          # layers
LR: float = 0.04   # learning rate
NAME = "x"  # a string
NEG = -1e-3
EXPR = 2**3
lower = 5
'''


def test_knobs_find_only_literal_constants():
    found = knobs.find(SRC)
    assert {k: v.value for k, v in found.items()} == {"DEPTH": 4, "LR": 0.04, "NAME": "x", "NEG": -0.001}


def test_knobs_rewrite_keeps_comments_and_layout():
    out = knobs.rewrite(SRC, {"DEPTH": 6, "LR": 0.05, "NEG": -2e-4})
    assert "DEPTH = 6          # layers\n" in out
    assert "LR: float = 0.05   # learning rate\n" in out
    assert "NEG = -0.0002\n" in out
    assert out.replace("6 ", "4 ", 1).replace("0.05", "0.04").replace("-0.0002", "-1e-3") == SRC
    with pytest.raises(KeyError):
        knobs.rewrite(SRC, {"EXPR": 1})


def test_the_skeleton_sets_the_knobs_values_aside_and_keeps_everything_else():
    a = "LR = 0.08  # the rate\nDEPTH = 2\nx = LR * DEPTH\n"
    assert knobs.skeleton(a) == "LR = ...  # the rate\nDEPTH = ...\nx = LR * DEPTH\n"
    assert knobs.skeleton(a) == knobs.skeleton(a.replace("0.08", "0.080").replace("2\n", "3\n", 1))
    assert knobs.skeleton(a) != knobs.skeleton(a.replace("LR * DEPTH", "LR * DEPTH * 2"))
    assert knobs.skeleton(a) != knobs.skeleton(a.replace("# the rate", "# a rate"))
