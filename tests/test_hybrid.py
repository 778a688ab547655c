"""The hybrid agent (optimiser + LLM in one study), the study memory in the prompt, and --stall."""

from __future__ import annotations

import pytest

from autoresearch.agents import Context, get_agent, prompt
from autoresearch.agents.builtin import BuiltinAgent
from autoresearch.agents.hybrid import HybridAgent, llm_turn
from autoresearch.config import Config
from autoresearch.errors import ConfigError
from autoresearch.study import Study
from autoresearch.trial import Trial, TrialState
from tests.fakes import ScriptedAgent, knob, make_fake_workspace


def test_turns_are_deterministic_and_take_the_share():
    turns = [llm_turn(n, 0.3, seed=7) for n in range(1, 101)]
    assert sum(turns) in (29, 30, 31)
    assert turns == [llm_turn(n, 0.3, seed=7) for n in range(1, 101)]
    assert not any(llm_turn(n, 0.0, 1) for n in range(1, 20)) and all(llm_turn(n, 1.0, 1) for n in range(1, 20))


def test_registry_builds_a_hybrid_of_any_llm_agent():
    agent = get_agent("builtin+openai", llm_share=0.25, model="m", n_startup_trials=3)
    assert isinstance(agent, HybridAgent) and agent.llm_share == 0.25
    assert agent.optimiser.n_startup_trials == 3 and agent.llm.model == "m"
    with pytest.raises(ConfigError, match="unknown agent"):
        get_agent("builtin+nosuch")
    with pytest.raises(ConfigError, match="llm_share"):
        get_agent("builtin+openai", llm_share=2)


def test_hybrid_study_llm_sees_the_optimiser_and_the_optimiser_learns(tmp_path, monkeypatch):
    import optuna
    ws = make_fake_workspace(tmp_path / "ws")
    llm = ScriptedAgent([knob("X", 2.6), knob("X", 4.4), knob("X", 5.5)])
    agent = HybridAgent(BuiltinAgent(n_startup_trials=1), llm, llm_share=0.5)
    added = []          # every point the optimiser's TPE study learned from, per proposal
    real_add = optuna.study.Study.add_trial
    monkeypatch.setattr(optuna.study.Study, "add_trial", lambda self, t: (added.append(dict(t.params)), real_add(self, t)))
    study = Study(ws, agent=agent, config=Config.load({"baseline_runs": 2}))
    study.optimize(max_trials=5)
    trials = [t for t in study.trials if t.kind != "baseline"]
    by_llm = [t.number for t in trials if t.extra["agent"]["by"] == "llm"]
    assert by_llm == [t.number for t in trials if llm_turn(t.number, 0.5, 0)] and len(by_llm) == len(llm.contexts) >= 2
    # the LLM saw the optimiser's knobs, ranges and best values, and the history
    notes = "\n".join(llm.contexts[0].notes)
    assert "X: [0.0, 6.0, 'linear'] -> " in notes
    assert "The optimiser beside you" in prompt.build(llm.contexts[0])
    # the optimiser learned from the LLM's trials: their knob values are in its TPE history
    first_llm = next(t for t in trials if t.extra["agent"]["by"] == "llm")
    assert first_llm.extra["knobs"]["X"] == 2.6
    later = [t for t in trials if t.extra["agent"]["by"] == "optimiser" and t.number > first_llm.number]
    assert later and {"X": 2.6} in added


def _t(n, state, value, desc, reason="", extra=None):
    return Trial(number=n, state=state, description=desc, value=value, reason=reason, extra=extra or {})


def test_prompt_shows_hypotheses_outcomes_and_says_change_direction(tmp_path):
    hist = (_t(0, TrialState.KEEP, 1.0, "baseline"),
            _t(1, TrialState.CRASH, None, "deeper model", "exit code 1\nTraceback"),
            _t(2, TrialState.DISCARD, 1.1, "lr x2", extra={"agent": {"why": "loss plateaued early"}}),
            _t(3, TrialState.DISCARD, 1.2, "lr x3"))
    ctx = Context(root=tmp_path, program="", files={}, history=hist, best=hist[0], stall_hint=3)
    text = prompt.build(ctx)
    assert "deeper model -> exit code 1" in text
    assert "(why: loss plateaued early)" in text
    assert "Change direction: the last 3 trials kept nothing" in text
    assert "Change direction" not in prompt.build(Context(root=tmp_path, program="", files={}, history=hist,
                                                          best=hist[0], stall_hint=4))


def test_stall_stops_the_study(tmp_path):
    ws = make_fake_workspace(tmp_path / "ws")
    steps = [knob("X", 0.5), knob("X", 0.4), knob("X", 0.3), knob("X", 0.2)]
    study = Study(ws, agent=ScriptedAgent(steps), config=Config.load({"baseline_runs": 2, "stall": 2}))
    study.optimize(max_trials=4)
    assert len(study.trials) == 3 and "without a keep" in study.stop_reason
    with pytest.raises(ConfigError, match="stall"):
        Config.load({"stall": 0})
