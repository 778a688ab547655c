"""Tree search (autoresearch/tree.py): the rule that picks the node a proposal improves (softmax over
the top-k values, temperature = the noise sd; seeded), and the loop over the fake harness in a real git
repo: a child of a non-best node that beats the best is re-based onto the best with its node's change
and kept (the branch stays a line), one that does not is discarded; the agent is told its node."""

from __future__ import annotations

import collections
import math
from types import SimpleNamespace

import pytest

from autoresearch import knobs as k
from autoresearch import tree
from autoresearch.agents import prompt
from autoresearch.agents.builtin import BuiltinAgent
from autoresearch.config import Config
from autoresearch.errors import ConfigError
from autoresearch.trial import Trial, TrialState
from tests.fakes import check_ledger_and_git, git, knob, knobs, make_study, value


def _t(number, v, state=TrialState.DISCARD, commit="c"):
    return Trial(number=number, state=state, description=f"t{number}", commit=commit and f"{commit}{number}",
                 value=v, values=(v,) if v is not None else ())


# ---------------------------------------------------------------- the parent-choice rule
def test_nodes_are_the_best_then_the_top_judged_trials_with_code():
    best = _t(1, 2.0, TrialState.KEEP)
    trials = [_t(0, 3.0, TrialState.KEEP), best, _t(2, 2.1), _t(3, 2.05), _t(4, None, TrialState.CRASH),
              _t(5, 1.9, commit=""), _t(6, 2.5), _t(7, float("nan"))]
    assert [t.number for t in tree.nodes(trials, best, 3)] == [1, 3, 2]
    assert [t.number for t in tree.nodes(trials, best, 1)] == [1]
    assert [t.number for t in tree.nodes(trials, best, 3, "maximize")] == [1, 0, 6]
    assert tree.nodes(trials, None, 3) == []


def test_softmax_weights_fall_by_e_per_noise_sd_behind():
    w = tree.weights([2.0, 2.01, 2.03], 2.0, sd=0.01)
    assert sum(w) == pytest.approx(1.0)
    assert w[1] / w[0] == pytest.approx(math.exp(-1))
    assert w[2] / w[0] == pytest.approx(math.exp(-3))
    # a value better than the best (a discard within the noise) weighs as much as the best
    assert tree.weights([2.0, 1.99], 2.0, sd=0.01) == pytest.approx([0.5, 0.5])
    # no measured noise: the judge's floor (0.1% of the best) is the temperature
    w = tree.weights([2.0, 2.002], 2.0, sd=0.0)
    assert w[1] / w[0] == pytest.approx(math.exp(-1))
    # maximize: a lower value is behind
    w = tree.weights([2.0, 1.99], 2.0, sd=0.01, direction="maximize")
    assert w[1] < w[0]


def test_choice_is_seeded_and_picks_nodes_by_their_weights():
    best = _t(1, 2.0, TrialState.KEEP)
    trials = [best, _t(2, 2.01), _t(3, 2.05), _t(4, 2.5)]
    picks = [tree.choose(trials, best, 3, 0.01, seed=7, number=n).number for n in range(1, 3001)]
    again = [tree.choose(trials, best, 3, 0.01, seed=7, number=n).number for n in range(1, 3001)]
    other = [tree.choose(trials, best, 3, 0.01, seed=8, number=n).number for n in range(1, 3001)]
    assert picks == again and picks != other
    counts = collections.Counter(picks)
    assert set(counts) == {1, 2, 3}                    # trial 4 is not in the top 3
    w = tree.weights([2.0, 2.01, 2.05], 2.0, 0.01)     # expected shares 0.72, 0.26, 0.005
    for number, share in zip((1, 2, 3), w):
        assert abs(counts[number] / 3000 - share) < 0.04, counts
    assert tree.choose(trials, best, 1, 0.01, 7, 5) is best
    assert tree.choose([best], best, 3, 0.01, 7, 5) is best


def test_node_for_follows_the_search_setting():
    best = _t(1, 2.0, TrialState.KEEP)
    trials = [best, _t(2, 2.0)]             # equal values: each picked half the time
    study = SimpleNamespace(trials=trials, best=best, judge=SimpleNamespace(sd=0.01),
                            harness=SimpleNamespace(direction="minimize"), config=Config())
    assert {tree.node_for(study, n).number for n in range(40)} == {1}
    study.config = Config(search="tree", tree_k=2)
    assert {tree.node_for(study, n).number for n in range(40)} == {1, 2}
    study.best = None
    assert tree.node_for(study, 3) is None


def test_settings_are_checked():
    assert Config().search == "greedy"
    assert Config.load({"search": "tree", "tree_k": 4}, environ={}).tree_k == 4
    assert Config.load({}, environ={"AUTORESEARCH_SEARCH": "tree"}).search == "tree"
    with pytest.raises(ConfigError, match="greedy or tree"):
        Config.load({"search": "beam"}, environ={})
    with pytest.raises(ConfigError, match="tree_k"):
        Config.load({"tree_k": 0}, environ={})
    from autoresearch.cli import _parser
    assert _parser().parse_args(["run", "--search", "tree"]).search == "tree"


# ---------------------------------------------------------------- the loop: a tree over the fake harness
def _force(monkeypatch, plan: dict):
    """Trial n improves the trial plan[n] (the rule's draw replaced by a plan); others the best."""
    def node_for(study, number):
        want = plan.get(number)
        return study.best if want is None else next(t for t in study.trials if t.number == want)
    monkeypatch.setattr(tree, "node_for", node_for)


def test_child_of_a_non_best_node_is_judged_against_the_best(ws_xy, monkeypatch):
    # X = Y = 1: 9.0.  1: X -> 3 (5.0, kept).  2: X -> 5, Y -> 2.5 (5.25: a discard, the node).
    # 3 improves trial 2 with X -> 6 (10.25: not better than the best: discarded, never re-based).
    # 4 improves trial 2 with X -> 3 (X = 3, Y = 2.5: 1.25): better than the best, so re-based onto
    # trial 1 with trial 2's Y change and its own, run again, kept.
    _force(monkeypatch, {3: 2, 4: 2})
    study, agent = make_study(ws_xy, [knob("X", 3.0), knobs(X=5.0, Y=2.5), knob("X", 6.0), knob("X", 3.0)],
                              search="tree")
    study.optimize(max_trials=4)
    trials = check_ledger_and_git(ws_xy)                 # kept commits form a line
    t = {tr.number: tr for tr in trials}
    assert [t[n].state for n in range(5)] == [TrialState.KEEP, TrialState.KEEP, TrialState.DISCARD,
                                              TrialState.DISCARD, TrialState.KEEP]
    # the agent worked on the node's code and was told so
    ctx3, ctx4 = agent.contexts[2], agent.contexts[3]
    assert ctx3.node.number == 2 and ctx4.node.number == 2 and ctx3.best.number == 1
    assert k.find(ctx3.files["train.py"])["X"].value == 5.0
    assert agent.contexts[0].node is None and agent.contexts[1].node is None
    text = prompt.build(ctx4)
    assert "You improve trial 2" in text and "Best so far (not the files below): trial 1" in text
    # the child that did not beat the best: judged against the best, recorded on its node
    assert t[3].value == pytest.approx(value(6.0, 2.5))
    assert t[3].reason.startswith("vs the best trial 1")
    assert t[3].parent == t[2].commit and t[3].extra["improves"] == 2 and "stale" not in t[3].extra
    assert git(ws_xy, "rev-parse", f"{t[3].commit}^") == t[2].commit
    # the child that did: re-based onto the best with its node's change, measured again, kept
    assert t[4].extra["improves"] == 2 and t[4].extra["rebased"] is True
    assert t[4].extra["stale"][0]["base"] == t[2].commit
    assert t[4].extra["stale"][0]["values"] == [pytest.approx(value(3.0, 2.5))]
    assert t[4].parent == t[1].commit == git(ws_xy, "rev-parse", f"{t[4].commit}^")
    assert t[4].value == pytest.approx(value(3.0, 2.5)) == study.best.value
    got = {n: v.value for n, v in k.find((ws_xy / "train.py").read_text()).items()}
    assert (got["X"], got["Y"]) == (3.0, 2.5)
    assert git(ws_xy, "log", "--format=%s", "-1").startswith("trial 4:")
    assert git(ws_xy, "diff", "--name-only", t[1].commit, t[4].commit) == "train.py"


def test_child_whose_node_conflicts_with_the_best_is_discarded(ws_xy, monkeypatch):
    # 1: X -> 3 (5.0, kept). 2: Y -> 0 (10.0, the node). 3: on the best, Y -> 2.8 (1.04, kept).
    # 4 improves trial 2 with Y -> 2.9 (1.01): better than the best on its node, but its node's line
    # and the best's changed the same line: re-basing conflicts, a DISCARD that says so.
    # 5 improves trial 2 with Y -> 2.5 (1.25): not better than the best, discarded where it ran.
    _force(monkeypatch, {4: 2, 5: 2})
    study, _ = make_study(ws_xy, [knob("X", 3.0), knob("Y", 0.0), knob("Y", 2.8), knob("Y", 2.9), knob("Y", 2.5)],
                          search="tree")
    study.optimize(max_trials=5)
    trials = check_ledger_and_git(ws_xy)
    t = {tr.number: tr for tr in trials}
    assert t[3].state == TrialState.KEEP and study.best.number == 3
    assert t[4].state == TrialState.DISCARD and "conflicted in train.py" in t[4].reason, t[4].reason
    assert t[4].extra["improves"] == 2
    assert t[5].state == TrialState.DISCARD and t[5].reason.startswith("vs the best trial 3")
    assert t[5].value == pytest.approx(value(3.0, 2.5)) and t[5].parent == t[2].commit


# ---------------------------------------------------------------- random search, the benchmark's baseline
def test_builtin_random_sampler_draws_from_the_first_trial(tmp_path, monkeypatch):
    from autoresearch.agents import Context
    from autoresearch.agents import builtin
    with pytest.raises(ConfigError, match="tpe"):
        BuiltinAgent(sampler="grid")
    source = "X = 1.0  # knob\nY = 3.0  # knob\n"

    def ctx(n):
        (tmp_path / "train.py").write_text(source)
        return Context(root=tmp_path, program="", files={"train.py": source}, editable=("train.py",),
                       trial_number=n, search={"X": [0.0, 6.0, "linear"], "Y": [0.0, 6.0, "linear"]})
    local = []
    monkeypatch.setattr(builtin, "_local_move", lambda *a: local.append(a) or {"X": 2.0, "Y": 3.0})
    assert BuiltinAgent().propose(ctx(1)).description == "X 1.0 -> 2.0"    # TPE: local steps at first
    for n in range(1, 6):
        p = BuiltinAgent(sampler="random").propose(ctx(n))
        assert not p.invalid and " -> " in p.description
        assert k.find((tmp_path / "train.py").read_text())["X"].value == p.extra["params"]["X"]
    assert len(local) == 1                                                   # random never steps locally
