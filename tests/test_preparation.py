"""preparation.py: the harness' check says whether its data is there; prepare runs once per machine."""

from __future__ import annotations

import pytest

from autoresearch import preparation
from autoresearch.errors import NotPreparedError
from autoresearch.harness import Harness


def test_check_says_what_to_run(ws, monkeypatch):
    harness = Harness.load(ws)
    assert preparation.problem(ws, harness) == ""
    monkeypatch.setenv("AUTORESEARCH_FAKE_UNPREPARED", "1")
    assert "not prepared" in preparation.problem(ws, harness)
    with pytest.raises(NotPreparedError, match="run `autoresearch prepare`"):
        preparation.check(ws, harness)


def test_ensure_prepares_once_per_machine(ws, tmp_path):
    marker = tmp_path / "prepared"
    (ws / "prep.py").write_text(f"import sys, pathlib\np = pathlib.Path({str(marker)!r})\n"
                                f"if '--check' in sys.argv: sys.exit(0 if p.exists() else 2)\n"
                                f"p.write_text(p.read_text() + 'x' if p.exists() else 'x')\n")
    harness = Harness.load(ws)
    import dataclasses
    harness = dataclasses.replace(harness, prepare="python prep.py", check="python prep.py --check")
    assert preparation.ensure(ws, harness, "key-1") == ""
    assert preparation.ensure(ws, harness, "key-1") == "" and marker.read_text() == "x"    # once
    broken = dataclasses.replace(harness, prepare="python -c 'import sys; sys.exit(3)'", check="python -c 'import sys; sys.exit(1)'")
    assert "failed (exit 3)" in preparation.ensure(ws, broken, "key-2")
