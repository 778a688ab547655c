"""The builtin agent: Optuna over train.py's constants, one readable change per trial."""

from __future__ import annotations

import re

from autoresearch.agents import Context, get_agent
from autoresearch.agents.builtin import BuiltinAgent
from autoresearch.config import Config
from autoresearch.study import Study
from autoresearch.trial import Trial, TrialState
from tests.fakes import TRAIN, git, make_fake_workspace


def test_study_with_builtin_agent_improves_and_only_touches_literals(tmp_path):
    ws = make_fake_workspace(tmp_path / "ws")
    study = Study(ws, agent="builtin", config=Config.load({"baseline_runs": 1}, environ={}))
    study.optimize(max_trials=8)
    trials = study.trials
    assert len(trials) == 9
    for t in trials[1:]:
        assert re.fullmatch(r"X 1\.0 -> [0-9.]+|X [0-9.]+ -> [0-9.]+", t.description), t.description
        assert t.state in (TrialState.KEEP, TrialState.DISCARD)
    assert study.best.value < trials[0].value          # (X-3)^2+1 from X=1: some draw gets closer
    # the kept file differs from the original only in the X line
    diff = [l for l in git(ws, "diff", trials[0].commit, "HEAD", "--", "train.py").splitlines()
            if l.startswith(("+", "-")) and not l.startswith(("+++", "---"))]
    assert len(diff) == 2 and all(l[1:].startswith("X = ") for l in diff)


def test_history_seeds_the_search_and_no_point_repeats(tmp_path):
    (tmp_path / "train.py").write_text(TRAIN)
    history = []
    for i, x in enumerate([1.0, 2.0, 2.5, 4.0, 5.0, 3.5]):
        history.append(Trial(number=i, state=TrialState.DISCARD if i else TrialState.KEEP, description="",
                             commit=f"c{i}", value=(x - 3) ** 2 + 1, extra={"knobs": {"X": x}}))
    agent = BuiltinAgent(n_startup_trials=3)
    seen = set()
    for n in range(6):
        (tmp_path / "train.py").write_text(TRAIN)
        ctx = Context(root=tmp_path, program="", files={"train.py": TRAIN}, editable=("train.py",),
                      history=tuple(history), best=history[0], trial_number=10 + n, search={"X": [0.0, 6.0]})
        p = agent.propose(ctx)
        assert not p.invalid
        x = p.extra["params"]["X"]
        assert x not in {1.0, 2.0, 2.5, 4.0, 5.0, 3.5}
        seen.add(x)
        assert f"X = {x}" in (tmp_path / "train.py").read_text()
    assert len(seen) >= 3


def test_no_search_range_is_an_invalid_proposal(tmp_path):
    ctx = Context(root=tmp_path, program="", files={"train.py": TRAIN}, editable=("train.py",), search={})
    assert "no [search] range" in get_agent("builtin").propose(ctx).invalid


def test_a_pruned_trial_reaches_optuna_as_pruned_with_its_curve(tmp_path, monkeypatch):
    import optuna
    made = []
    real = optuna.create_study
    monkeypatch.setattr(optuna, "create_study", lambda **kw: made.append(real(**kw)) or made[-1])
    (tmp_path / "train.py").write_text(TRAIN)
    base = Trial(number=0, state=TrialState.KEEP, description="baseline", commit="c0", value=5.0, extra={"knobs": {"X": 1.0}})
    pruned = Trial(number=1, state=TrialState.DISCARD, description="X 1.0 -> 5.5", commit="c1", value=None,
                   reason="pruned at 40%: ...", extra={"knobs": {"X": 5.5}, "pruned": "pruned at 40%: ...",
                                                       "curves": [[[0.2, 3.1, 1.0], [0.4, 3.0, 2.0]]]})
    ctx = Context(root=tmp_path, program="", files={"train.py": TRAIN}, editable=("train.py",),
                  history=(base, pruned), best=base, trial_number=2, search={"X": [0.0, 6.0]})
    p = BuiltinAgent().propose(ctx)
    assert not p.invalid and p.extra["params"]["X"] != 5.5          # a pruned point is not proposed again
    told = [t for t in made[0].trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(told) == 1 and told[0].params == {"X": 5.5} and told[0].intermediate_values == {20: 3.1, 40: 3.0}


def _ctx(tmp_path, history, best, number, text=TRAIN):
    (tmp_path / "train.py").write_text(text)
    return Context(root=tmp_path, program="", files={"train.py": text}, editable=("train.py",), history=tuple(history),
                   best=best, trial_number=number, search={"X": [0.0, 6.0], "Y": [0.5, 8.0, "log"]})


def test_every_knob_gets_a_first_move_before_the_model_takes_over(tmp_path):
    """Screening: a knob never moved tells the model nothing, so each gets one broad move first, however
    few startup trials are set."""
    history = [Trial(number=0, state=TrialState.KEEP, description="baseline", commit="c0", value=5.0, kind="baseline",
                     extra={"knobs": {"X": 1.0, "Y": 3.0}})]
    moved = []
    for n in range(1, 3):
        p = BuiltinAgent(n_startup_trials=1).propose(_ctx(tmp_path, history, history[0], n))
        (name,) = [k for k, v in p.extra["params"].items() if v != history[0].extra["knobs"][k]]
        moved.append(name)
        history.append(Trial(number=n, state=TrialState.DISCARD, description=p.description, commit=f"c{n}",
                             parent="c0", value=9.0, extra={"knobs": p.extra["params"]}))
    assert sorted(moved) == ["X", "Y"], moved


def test_a_kept_step_is_taken_once_more_then_the_search_moves_on(tmp_path):
    """The pattern move: X 1.0 -> 2.5 kept, so X 4.0 next (the same step in X's scale); Y's log step 3 -> 5.5
    kept, so the same ratio again, clipped to its range; a knob with less than half its step left stays; a
    step already tried, or -o extend=false, leaves it to the search."""
    base = Trial(number=0, state=TrialState.KEEP, description="baseline", commit="c0", value=5.0, kind="baseline",
                 extra={"knobs": {"X": 1.0, "Y": 3.0}})
    kept = Trial(number=1, state=TrialState.KEEP, description="X 1.0 -> 2.5", commit="c1", parent="c0", value=4.0,
                 extra={"knobs": {"X": 2.5, "Y": 3.0}, "base": "c0"})
    text = TRAIN.replace("X = 1.0", "X = 2.5")
    p = BuiltinAgent().propose(_ctx(tmp_path, [base, kept], kept, 2, text))
    assert p.extra["params"] == {"X": 4.0, "Y": 3.0} and p.description == "X 2.5 -> 4.0"
    # already tried: the search goes on as before (the next knob's first move)
    tried = Trial(number=2, state=TrialState.DISCARD, description="X 2.5 -> 4.0", commit="c2", parent="c1", value=4.5,
                  extra={"knobs": {"X": 4.0, "Y": 3.0}, "base": "c1"})
    p = BuiltinAgent().propose(_ctx(tmp_path, [base, kept, tried], kept, 3, text))
    assert p.extra["params"]["Y"] != 3.0 and p.extra["params"]["X"] == 2.5
    assert BuiltinAgent(extend=False).propose(_ctx(tmp_path, [base, kept], kept, 2, text)).extra["params"] != {"X": 4.0, "Y": 3.0}
    # a log knob: 3 -> 5.5 kept, 10.1 next would leave [0.5, 8]: 8, its bound (more than half the step)
    up = Trial(number=1, state=TrialState.KEEP, description="Y 3.0 -> 5.5", commit="c1", parent="c0", value=4.0,
               extra={"knobs": {"X": 1.0, "Y": 5.5}, "base": "c0"})
    p = BuiltinAgent().propose(_ctx(tmp_path, [base, up], up, 2, TRAIN.replace("Y = 3.0", "Y = 5.5")))
    assert p.extra["params"] == {"X": 1.0, "Y": 8.0}
    # a pair near the bounds: after X 2.0 -> 5.8 and Y 3 -> 5, X has 0.2 of its 3.8 step left:
    # X stays, Y goes to its bound; with X alone there, nothing is left to extend: the search goes on
    pair = Trial(number=1, state=TrialState.KEEP, description="X, Y", commit="c1", parent="c0", value=4.0,
                 extra={"knobs": {"X": 5.8, "Y": 5.0}, "base": "c0"})
    base2 = base.replace(extra={"knobs": {"X": 2.0, "Y": 3.0}})
    p = BuiltinAgent().propose(_ctx(tmp_path, [base2, pair], pair, 2, TRAIN.replace("X = 1.0", "X = 5.8").replace("Y = 3.0", "Y = 5.0")))
    assert p.extra["params"] == {"X": 5.8, "Y": 8.0}
    alone = pair.replace(extra={"knobs": {"X": 5.8, "Y": 3.0}, "base": "c0"})
    p = BuiltinAgent().propose(_ctx(tmp_path, [base2, alone], alone, 2, TRAIN.replace("X = 1.0", "X = 5.8")))
    assert p.extra["params"]["X"] != 6.0 or p.extra["params"]["Y"] != 3.0
