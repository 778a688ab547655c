"""A real study over the real GPT harness (smoke profile, a few seconds a run): the builtin agent,
the protected evaluator, the hidden holdout, and forgeries that must not be kept."""

from __future__ import annotations

import pytest

from autoresearch.agents.builtin import BuiltinAgent
from autoresearch.config import Config
from autoresearch.ledger import Ledger
from autoresearch.study import Study, prepare
from autoresearch.trial import TrialState
from autoresearch.workspace import init
from tests.fakes import ScriptedAgent, edit, git


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def smoke_ws(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("AUTORESEARCH_CACHE", str(cache))
    monkeypatch.setenv("AUTORESEARCH_EMBEDDED_LIMIT", "1500")
    ws = init(tmp_path / "ws", profile="smoke", tag="real")
    prepare(ws)
    return ws.root


class Recording(BuiltinAgent):
    def __init__(self):
        super().__init__()
        self.contexts = []

    def propose(self, context):
        self.contexts.append(context)
        return super().propose(context)


def test_real_study_smoke_profile_builtin_agent(smoke_ws):
    agent = Recording()
    # at most 2 runs a trial, the best not re-run: the judge's re-runs have tests of their own (test_study.py)
    study = Study(smoke_ws, agent=agent, config=Config.load({"baseline_runs": 2, "max_repeats": 2, "rerun_best": False},
                                                            environ={}))
    study.optimize(max_trials=2)
    trials = Ledger(smoke_ws, "real").load()
    assert len(trials) == 3
    base = trials[0]
    assert base.kind == "baseline" and len(base.values) >= 2 and base.state == TrialState.KEEP
    assert 1.0 < base.value < 12.0                                   # bits per byte of a barely trained model
    assert base.metrics["num_steps"] > 0 and base.metrics["depth"] == 1
    assert base.profile == "smoke"
    assert 1.0 < base.extra["holdout"] < 12.0 and base.extra["holdout"] != base.value
    for t in trials[1:]:
        assert t.state in (TrialState.KEEP, TrialState.DISCARD, TrialState.CRASH), t.reason
        assert " -> " in t.description
    kept = [t for t in trials if t.state == TrialState.KEEP]
    assert git(smoke_ws, "rev-parse", "HEAD") == kept[-1].commit
    assert git(smoke_ws, "status", "--porcelain") == ""
    # the hidden holdout never reaches the agent
    for ctx in agent.contexts:
        assert all("holdout" not in t.extra for t in ctx.history)
    # no model files are left behind
    assert not list((smoke_ws / ".autoresearch" / "models").glob("*.pt"))


FORGERIES = {
    "prints a fake val_bpb": (
        lambda s: s.replace('if val_bpb is not None:\n        print(f"val_bpb:          {val_bpb:.6f}")',
                            'print("val_bpb:          0.100000")'),
        "but the protected evaluator measured"),
    "removes the causal mask": (
        lambda s: s.replace("is_causal=True)", "is_causal=False)"), "not causal"),
}


def test_forgeries_are_invalid(smoke_ws):
    # one study, a forgery a trial (one baseline for both)
    original = (smoke_ws / "train.py").read_text()
    steps = []
    for name, (fn, _) in FORGERIES.items():
        assert fn(original) != original, f"the forgery must change train.py: {name}"
        steps.append(edit(fn, name))
    study = Study(smoke_ws, agent=ScriptedAgent(steps), config=Config.load({"baseline_runs": 1}, environ={}))
    study.optimize(max_trials=len(steps))
    for t, (name, (_, text)) in zip(study.trials[1:], FORGERIES.items()):
        assert t.description == name and t.state == TrialState.INVALID, (t.state, t.reason)
        assert text in t.reason
    assert git(smoke_ws, "rev-parse", "HEAD") == study.trials[0].commit
