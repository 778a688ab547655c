"""finalize: the -final branch (one commit per kept change, in order, with gain, noise and runs)
and the ablation that reruns the final code without each kept change, over the fake harness
(a real git repository, real runs of a 10-line train.py)."""

from __future__ import annotations

import json

import pytest

from autoresearch import cli
from autoresearch.config import Config
from autoresearch.finalize import Finalizer
from autoresearch.ledger import Ledger
from autoresearch.study import Study
from autoresearch.trial import TrialState
from tests.fakes import ScriptedAgent, edit, git, knob, make_fake_workspace


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """X 1 -> 2 (kept), X 2 -> 9 (discarded), then X forced to 3 further down (kept): after it, the
    first change no longer matters."""
    root = make_fake_workspace(tmp_path_factory.mktemp("fin") / "ws", tag="fin")
    steps = [knob("X", 2.0), knob("X", 9.0),
             edit(lambda s: s.replace("value = (X - 3)", "X = 3.0  # forced\nvalue = (X - 3)", 1), "force X to 3")]
    Study(root, agent=ScriptedAgent(steps), config=Config.load({}, environ={})).optimize(max_trials=3)
    return root


def test_the_final_branch_has_one_commit_per_kept_change(finished):
    trials = Ledger(finished, "fin").load()
    assert [t.state for t in trials] == [TrialState.KEEP, TrialState.KEEP, TrialState.DISCARD, TrialState.KEEP]
    head_before = git(finished, "rev-parse", "HEAD")
    record = Finalizer(finished, "fin", repeats=0).run()
    assert record["branch"] == "autoresearch/fin-final" and record["rows"] == []
    log = git(finished, "log", "--format=%s", "autoresearch/fin-final").splitlines()
    assert log[:2] == ["force X to 3", "X -> 2.0"]
    assert git(finished, "rev-parse", "autoresearch/fin-final~2") == trials[0].commit
    body = git(finished, "log", "-1", "--format=%b", "autoresearch/fin-final~1")
    assert "gain +3.000000" in body and "noise sd" in body and "runs 1" in body
    # exactly the measured code, and nothing else moved
    assert git(finished, "rev-parse", "autoresearch/fin-final^{tree}") == git(finished, "rev-parse", f"{trials[3].commit}^{{tree}}")
    assert git(finished, "rev-parse", "HEAD") == head_before and git(finished, "status", "--porcelain") == ""


def test_the_ablation_flags_a_change_that_no_longer_helps(finished, capsys):
    assert cli.main(["finalize", "-C", str(finished), "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    record = json.loads((finished / ".autoresearch" / "fin" / "final.json").read_text())
    rows = {r["trial"]: r for r in record["rows"]}
    assert record["final_mean"] == pytest.approx(1.0) and record["final_values"] == pytest.approx([1.0, 1.0])
    assert rows[1]["contribution"] == pytest.approx(0.0) and rows[1]["flag"]          # X=3 is forced anyway
    assert rows[1]["verdict"] == "no longer helps"
    assert rows[3]["contribution"] == pytest.approx(1.0) and not rows[3]["flag"]      # without it X=2: 2.0
    assert rows[3]["verdict"] == "helps"
    assert "no longer helps" in out and "autoresearch/fin-final" in out
    md = (finished / "report.md").read_text()
    assert "## Finalize" in md and "| 1 | X -> 2.0 |" in md and "**no longer helps**" in md
    assert "no longer helps" in (finished / "report.html").read_text()
    assert git(finished, "status", "--porcelain") == "" and not (finished / ".autoresearch" / "worktrees" / "finalize").exists()
