"""The one loop with several slots (local worker processes) over the fake harness in a real git repo:
two trials in flight, stale candidates re-based and re-run before keep, conflicts discarded, dying
runs and workers recorded as crashes, pipelining, running.json, Ctrl-C, resume after kill -9 of
the driver, the holdout of kept trials. Orderings a test needs are made by a gate on the
executor (a finished run is reported only once an event happened), never by sleeping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoresearch import running
from autoresearch.executors.inline import InlineExecutor
from autoresearch.executors.local import LocalExecutor
from autoresearch.ledger import Ledger
from autoresearch.trial import TrialState
from tests.fakes import (PATIENCE, SANDBOXED, check_ledger_and_git, gated, git, knobs, make_study, processes,
                         trainers_of, until, value)

ROOT = Path(__file__).resolve().parents[1]
def test_two_workers_keep_a_linear_branch(ws_xy):
    steps = [knobs(X=2.0), knobs(Y=2.0), knobs(X=0.5), knobs(Y=2.5)]
    study, agent = make_study(ws_xy, steps)
    study.optimize(max_trials=4, executor=LocalExecutor(2))
    trials = check_ledger_and_git(ws_xy)
    assert len(trials) == 5
    ran = [t for t in trials[1:] if t.commit]
    assert {t.extra["worker"] for t in ran} <= {"local-0", "local-1"}
    # changes to both X and Y made it onto the branch, whichever order they finished in, and the
    # best's value is what the branch's code measures
    from autoresearch import knobs as k
    got = {n: v.value for n, v in k.find((ws_xy / "train.py").read_text()).items()}
    assert got["X"] == 2.0 and got["Y"] in (2.0, 2.5)
    assert study.best.value == pytest.approx(value(got["X"], got["Y"]))
    # agents worked in worktrees, never in the main tree
    assert all(c.root != ws_xy and ".autoresearch" in str(c.root) for c in agent.contexts)
    # logs are named by trial number from the start, and the run was told its number
    for t in ran:
        assert t.log.endswith(f"t-{t.number}.log") or f"t-{t.number}." in t.log
        assert f"trial: {t.number}" in (ws_xy / t.log).read_text()


def test_stale_candidate_is_rebased_and_rerun_before_keep(ws_xy):
    # B (Y) and A (X) start together on the baseline; B's result is held until A is recorded and
    # kept, so B was measured on a base that is no longer the best: re-based onto A and run again
    study, _ = make_study(ws_xy, [knobs(Y=2.5), knobs(X=2.0)])
    ex = gated(LocalExecutor, lambda ex, h: h.job.trial == 1 and len(study.trials) < 2)(2)
    study.optimize(max_trials=2, executor=ex)
    trials = check_ledger_and_git(ws_xy)
    a, b = trials[1], trials[2]
    assert (a.number, a.description, a.state) == (2, "X -> 2.0", TrialState.KEEP) and not a.extra["rebased"]
    assert (b.number, b.description, b.state) == (1, "Y -> 2.5", TrialState.KEEP)
    assert b.extra["rebased"] is True
    assert b.parent == a.commit == b.extra["base"]
    assert git(ws_xy, "rev-parse", f"{b.commit}^") == a.commit
    # measured after re-basing: X = 2 and Y = 2.5 give 2.25; on the old base it measured 5.25
    assert b.values == (pytest.approx(value(2.0, 2.5)),)
    assert b.extra["stale"][0]["values"] == [pytest.approx(value(1.0, 2.5))]
    assert b.extra["stale"][0]["base"] == trials[0].commit
    assert git(ws_xy, "rev-parse", "HEAD") == b.commit
    assert (ws_xy / ".autoresearch/logs/t-1.log").exists() and (ws_xy / ".autoresearch/logs/t-1.1.log").exists()


def test_conflicting_rebase_is_discarded_with_the_reason(ws_xy):
    study, _ = make_study(ws_xy, [knobs(X=2.5), knobs(X=2.0)])
    ex = gated(LocalExecutor, lambda ex, h: h.job.trial == 1 and len(study.trials) < 2)(2)
    study.optimize(max_trials=2, executor=ex)
    trials = check_ledger_and_git(ws_xy)
    assert trials[1].state == TrialState.KEEP and trials[1].description == "X -> 2.0"
    b = trials[2]
    assert b.state == TrialState.DISCARD
    assert "conflicted in train.py" in b.reason and "trial 2" in b.reason
    assert b.commit == "" and b.extra["rebased"] is True
    assert b.extra["stale"][0]["values"] == [pytest.approx(value(2.5, 1.0))]
    assert "X = 2.0" in (ws_xy / "train.py").read_text()


def test_dying_runs_and_workers_are_crashes_and_the_study_goes_on(ws_xy):
    study, _ = make_study(ws_xy, [knobs(MODE="killself"), knobs(MODE="killparent"), knobs(X=2.0)])
    study.optimize(max_trials=3, executor=LocalExecutor(1))
    trials = check_ledger_and_git(ws_xy)
    assert [t.state for t in trials[1:]] == [TrialState.CRASH, TrialState.CRASH, TrialState.KEEP]
    assert "exit code -9" in trials[1].reason or (SANDBOXED and "exit code 137" in trials[1].reason)
    if not SANDBOXED:      # (in a sandbox the run's parent is the sandbox, which dies with it)
        assert "worker process died" in trials[2].reason and "signal 9" in trials[2].reason
    assert trials[3].value == pytest.approx(value(2.0, 1.0))


def test_pipelining_proposes_while_a_run_is_in_flight(ws_xy):
    # one slot: each run's end is held until the agent has been asked for the next proposal, so
    # the study only finishes if every proposal after the first was made while a run went
    steps = [knobs(**{"XY"[i % 2]: 1.0 + (i // 2 + 1) / 10}) for i in range(5)]
    study, agent = make_study(ws_xy, steps, baseline_runs=1, pipeline=True)
    asked = lambda h: len(agent.contexts) > h.job.trial or h.job.trial >= 5     # noqa: E731
    deadline = time.monotonic() + PATIENCE
    ex = gated(InlineExecutor, lambda ex, h: not asked(h) and time.monotonic() < deadline)()
    study.optimize(max_trials=5, executor=ex)
    assert time.monotonic() < deadline, "a run waited for a proposal that never came"
    trials = check_ledger_and_git(ws_xy)
    assert [t.state for t in trials[1:]] == [TrialState.KEEP] * 5
    assert sum(t.extra["rebased"] for t in trials) >= 3        # proposed ahead, re-based before running
    assert trials[-1].value == pytest.approx(value(1.3, 1.2))


def test_agent_failures_and_twins_are_recorded_unrun(ws_xy):
    boom = RuntimeError("agent bug")
    study, _ = make_study(ws_xy, [boom, knobs(X=2.0, SLEEP=0.5), knobs(X=2.0, SLEEP=0.5), lambda root: "nothing"])
    study.optimize(max_trials=4, executor=LocalExecutor(2))
    trials = check_ledger_and_git(ws_xy)
    by = {t.description: t for t in trials}
    assert by["agent crashed (RuntimeError): agent bug"].state == TrialState.INVALID
    assert by["nothing"].state == TrialState.INVALID and "no change" in by["nothing"].reason
    twins = [t for t in trials if t.description == "X -> 2.0, SLEEP -> 0.5"]
    assert len(twins) == 2 and sum(1 for t in twins if t.commit) == 1
    # proposed before its twin was kept: "same code"; after: re-based onto the best, where it changes nothing
    assert any("same code" in t.reason or "already in the best" in t.reason for t in twins)


def test_status_lists_the_trials_in_flight(ws_xy):
    from autoresearch import report
    study, _ = make_study(ws_xy, [knobs(X=2.0), knobs(Y=2.0)], baseline_runs=1)
    seen = []
    ledger_dir = ws_xy / ".autoresearch" / "t"

    def hold(ex, handle):      # report no run's end until running.json has listed both trials
        info = running.read(ledger_dir)
        if info and len(info.get("trials", [])) == 2:
            seen.append(info)
        return handle.job.trial > 0 and not seen

    study.optimize(max_trials=2, executor=gated(LocalExecutor, hold)(2))
    info = seen[0]
    assert {t["description"] for t in info["trials"]} == {"X -> 2.0", "Y -> 2.0"}
    assert {t["number"] for t in info["trials"]} == {1, 2}
    assert info["number"] == info["trials"][0]["number"]     # the one-trial format still reads
    assert info["executor"] == "local" and info["workers"] == 2
    text = report.summary([], now_running=info)
    assert "running   trial" in text and "Y -> 2.0" in text and "X -> 2.0" in text
    one = report.summary([], now_running={"number": 7, "description": "old format", "since": time.time()})
    assert "running   trial 7: old format" in one


def test_interrupt_cancels_runs_and_records_nothing_half_done(ws_xy):
    study, _ = make_study(ws_xy, [knobs(X=2.0, SLEEP=600), knobs(Y=2.0, SLEEP=600)], baseline_runs=1)
    trainers = []

    class Interrupting(LocalExecutor):
        def wait(self, handles, timeout=None):
            if len(handles) == 2 and len(trainers_of(ws_xy)) >= 2:     # the runs train
                trainers.extend(trainers_of(ws_xy))
                raise KeyboardInterrupt
            return super().wait(handles, timeout)

    study.optimize(max_trials=2, executor=Interrupting(2))
    trials = check_ledger_and_git(ws_xy)
    assert len(trials) == 1 and study.stop_reason == "interrupted"
    assert len(trainers) >= 2
    until(lambda: not trainers_of(ws_xy), "the cancelled runs to die", lambda: processes(trainers_of(ws_xy)))


DRIVER = """
import sys
from autoresearch.config import Config
from autoresearch.executors.local import LocalExecutor
from autoresearch.study import Study
from tests.fakes import ScriptedAgent, knobs
steps = [knobs(X=round(1 + i * 0.05, 2), Y=round(1 + i * 0.05, 2), SLEEP=30) for i in range(1, 40)]
steps[:3] = [knobs(X=1.5), knobs(Y=1.5), knobs(X=1.7)]
study = Study(sys.argv[1], agent=ScriptedAgent(steps), config=Config.load({"baseline_runs": 1}, environ={}))
study.optimize(max_trials=39, executor=LocalExecutor(2))
"""


def test_resume_after_the_driver_is_killed(ws_xy):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(ws_xy)], cwd=ROOT, env=env)
    ledger, ledger_dir = Ledger(ws_xy, "t"), ws_xy / ".autoresearch" / "t"
    try:
        # the event: the first trials are recorded and two long runs are in flight
        until(lambda: len(ledger.load()) >= 4 and len((running.read(ledger_dir) or {}).get("trials", [])) == 2
              and len(trainers_of(ws_xy)) >= 2, "two runs in flight")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = ledger.load()
    assert len(git(ws_xy, "worktree", "list").splitlines()) > 1      # the killed driver left worktrees
    # two changes that both help and do not conflict: whichever run ends first is kept, the other is
    # re-based onto it and re-run, so the best is X = Y = 3 in either order (the order is the machine's)
    study, agent = make_study(ws_xy, [knobs(X=3.0), knobs(Y=3.0)], baseline_runs=1)
    study.optimize(max_trials=2, executor=LocalExecutor(2))
    until(lambda: not trainers_of(ws_xy), "the orphaned runs to die")
    trials = check_ledger_and_git(ws_xy)
    assert len(trials) == len(before) + 2
    assert [t.to_dict() for t in trials[: len(before)]] == [t.to_dict() for t in before]
    assert sum(1 for t in trials if t.kind == "baseline") == 1
    assert {t.description for t in trials[-2:]} == {"X -> 3.0", "Y -> 3.0"}
    assert study.best.value == pytest.approx(1.0), [(t.number, t.state.value, t.description, t.value, t.reason[:90])
                                                    for t in trials]
    assert not list((ledger_dir / "worktrees").iterdir())


def test_kept_trials_get_the_hidden_holdout_score_and_agents_never_see_it(tmp_path):
    from tests.fakes import make_fake_workspace
    root = make_fake_workspace(tmp_path / "ws", scored=True, Y=1.0)
    study, agent = make_study(root, [knobs(X=2.0), knobs(X=6.0), knobs(Y=2.5)])
    study.optimize(max_trials=3, executor=LocalExecutor(2))
    trials = check_ledger_and_git(root)
    assert trials[0].extra["holdout"] == pytest.approx(trials[0].value + 0.5)
    kept = [t for t in trials[1:] if t.state == TrialState.KEEP]
    others = [t for t in trials[1:] if t.state != TrialState.KEEP]
    assert kept and others
    for t in kept:
        assert t.extra["holdout"] == pytest.approx(t.value + 0.5)
    assert all("holdout" not in t.extra for t in others)
    assert all("holdout" not in t.extra for c in agent.contexts for t in c.history)
    logs = root / ".autoresearch" / "logs"
    # the baseline's every repeat (their spread is the holdout's noise), then each kept trial's model
    assert {p.name for p in logs.glob("t-*.holdout.log")} == {"t-0.1.holdout.log", *(f"t-{t.number}.holdout.log"
                                                                                     for t in kept + trials[:1])}
    assert trials[0].extra["holdout_sd"] == 0.0
    assert not list((root / ".autoresearch" / "models").glob("*"))       # no model left behind
