"""Knobs where a script keeps them: argparse defaults beside UPPER_CASE constants; the builtin agent's
checks before the baseline; INVALID proposals count as the agent's failures."""

from __future__ import annotations

import pytest

from autoresearch import knobs
from autoresearch.agents import Context, Proposal, get_agent
from autoresearch.config import Config
from autoresearch.errors import AgentError, ConfigError
from autoresearch.harness import Harness
from autoresearch.ledger import Ledger
from autoresearch.study import Study
from autoresearch.trial import TrialState
from tests.fakes import ScriptedAgent, make_fake_workspace
from tests.toy_repo import TRAIN as TOY, git, make_toy_repo

ARGS = '''\
import argparse
DEPTH = 4
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=3e-4)   # learning rate
p.add_argument("-b", "--batch-size", type=int, default=32)
p.add_argument("--wd", dest="weight_decay", type=float, default=-0.1)
p.add_argument("--name", default="run")
p.add_argument("--sched", default=make_schedule())
p.add_argument("positional")
'''


def test_find_lists_argparse_defaults_by_dest_and_rewrite_keeps_the_line():
    found = knobs.find(ARGS)
    assert {k: v.value for k, v in found.items()} == {"DEPTH": 4, "lr": 3e-4, "batch_size": 32,
                                                      "weight_decay": -0.1, "name": "run"}
    assert found["lr"].flag == "--lr" and found["DEPTH"].flag == ""
    out = knobs.rewrite(ARGS, {"lr": 1e-3, "batch_size": 64, "DEPTH": 6})
    assert 'p.add_argument("--lr", type=float, default=0.001)   # learning rate\n' in out
    assert 'default=64)' in out and "DEPTH = 6\n" in out
    assert knobs.on_command("python train.py --lr=0.1 --name x", found) == ["lr", "name"]


def harness(tmp_path, run="python train.py", **search):
    (tmp_path / "train.py").write_text(TOY)
    return Harness(root=tmp_path, run=run, search=search)


def test_builtin_check_names_what_it_found_before_the_baseline(tmp_path):
    agent = get_agent("builtin")
    agent.check_harness(harness(tmp_path, lr=[1e-4, 1e-2, "log"], **{"--momentum": [0.0, 0.9]}))
    with pytest.raises(ConfigError, match=r"\[search\] names LR, .*found: lr = 0.001, momentum = 0.5, steps = 100"):
        agent.check_harness(harness(tmp_path, LR=[1e-4, 1e-2, "log"]))
    with pytest.raises(ConfigError, match=r"no \[search\] ranges.*lr = 0.001"):
        agent.check_harness(harness(tmp_path))
    with pytest.raises(ConfigError, match="sets --lr itself, so changing the default in train.py does nothing"):
        agent.check_harness(harness(tmp_path, "python train.py --lr 0.01", lr=[1e-4, 1e-2, "log"]))


def test_a_search_name_matching_nothing_stops_the_study_before_the_baseline(tmp_path):
    repo = make_toy_repo(tmp_path / "toy")
    (repo / "autoresearch.toml").write_text('[harness]\neditable = ["train.py"]\nreadonly = []\n'
                                            'run = "python train.py"\nmetric = "test_loss"\n'
                                            "metric_line = 'test loss: ([0-9.]+)'\n[search]\nLR = [0.0001, 0.01]\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "toml")
    with pytest.raises(ConfigError, match="found: lr = 0.001"):
        Study(repo, agent="builtin").optimize(max_trials=1)
    assert not Ledger(repo, "x").jsonl.parent.exists() and not (repo / "results.tsv").exists()


def test_first_local_moves_take_turns_over_the_knobs(tmp_path):
    (tmp_path / "train.py").write_text(TOY)
    agent = get_agent("builtin")
    names = []
    for n in range(1, 5):
        ctx = Context(root=tmp_path, program="", files={"train.py": TOY}, editable=("train.py",), trial_number=n,
                      search={"lr": [1e-4, 1e-2, "log"], "momentum": [0.0, 0.9], "steps": [50, 200, "int"]})
        names.append(agent.propose(ctx).description.split()[0])
    assert len(set(names)) == 3, names


def test_invalid_proposals_count_toward_the_agent_failure_limit(tmp_path):
    ws = make_fake_workspace(tmp_path / "ws")
    agent = ScriptedAgent([Proposal("x", invalid="nothing usable")] * 10)
    study = Study(ws, agent=agent, config=Config.load({"baseline_runs": 1, "max_agent_failures": 3}, environ={}))
    with pytest.raises(AgentError, match="failed 3 times in a row"):
        study.optimize()                      # no --max-trials: it must still stop
    states = [t.state for t in study.trials[1:]]   # (a proposal already asked for when the third failed is recorded too)
    assert 3 <= len(states) <= 4 and set(states) == {TrialState.INVALID}


def test_first_moves_are_broad_and_move_a_knob_at_its_bound_inwards():
    from autoresearch.agents.builtin import _distribution, _local_move
    import random
    search = {"WARMUP": [0.0, 0.2, "linear"], "LR": [0.005, 0.2, "log"], "DEPTH": [1, 6, "int"]}
    current = {"WARMUP": 0.0, "LR": 0.04, "DEPTH": 6}
    dists = {k: _distribution(k, search[k], current[k]) for k in search}
    seen = {k: set() for k in search}
    for turn in range(60):
        point = _local_move(current, dists, random.Random(turn), ["WARMUP", "LR", "DEPTH"], turn)
        (name,) = [k for k in point if point[k] != current[k]]        # one knob, and it always moved
        seen[name].add(point[name])
    assert all(0.06 <= v <= 0.1 for v in seen["WARMUP"]) and len(seen["WARMUP"]) > 5   # 30-50% of the range, up
    assert seen["LR"] == {0.08, 0.12, 0.02, 0.0133}                                    # x/÷ 2 or 3
    assert seen["DEPTH"] == {5}                                                        # at its top: one down


def test_a_first_move_from_near_one_end_of_a_range_goes_towards_its_middle():
    from autoresearch.agents.builtin import _distribution, _local_move
    import random
    search = {"LR": [0.005, 0.2, "log"], "WD": [0.0, 0.4, "linear"], "DEPTH": [1, 6, "int"]}
    current = {"LR": 0.008, "WD": 0.32, "DEPTH": 2}          # LR and WD in an outer 40%; DEPTH at 0.2 of its range
    dists = {k: _distribution(k, search[k], current[k]) for k in search}
    seen = {k: set() for k in search}
    for turn in range(60):
        point = _local_move(current, dists, random.Random(turn), ["LR", "WD", "DEPTH"], turn)
        (name,) = [k for k in point if point[k] != current[k]]
        seen[name].add(point[name])
    assert seen["LR"] == {0.016, 0.024}                       # up: x 2 or 3, never down towards its low end
    assert seen["WD"] and all(0.12 <= v <= 0.2 for v in seen["WD"])   # down by 30-50% of the range
    assert seen["DEPTH"] == {3}
    middle = dict(current, LR=0.03)                           # near the middle (0.49 in log scale): either way
    lr = {_local_move(middle, dists, random.Random(t), ["LR"], 0)["LR"] for t in range(40)}
    assert any(v > 0.03 for v in lr) and any(v < 0.03 for v in lr)
