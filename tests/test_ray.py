"""The scheduler on a local Ray (num_cpus=2, no dashboard) over the fake harness in a real git
repo: two trials in flight, a stale candidate re-based and re-run before keep, a Ray task whose
worker process dies mid-run recorded as a crash, the cache variable reaching the task, and a
clear error when Ray is missing."""

from __future__ import annotations

import sys

import pytest

from autoresearch.errors import AutoresearchError
from autoresearch.executors import parallel_optimize
from autoresearch.trial import TrialState
from tests.fakes import SANDBOXED
from tests.test_scheduler import check_ledger_and_git, edit, make_ws, study_for

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def ws(tmp_path):
    return make_ws(tmp_path / "ws")


def executor(n=2):
    from autoresearch.executors.ray import RayExecutor
    return RayExecutor(n)


def test_two_ray_workers_and_a_stale_candidate_rerun_before_keep(ray_local, ws, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTORESEARCH_CACHE", str(tmp_path / "cache"))
    study, agent = study_for(ws, [edit(Y=2.5, SLEEP=2.0), edit(X=2.0)])
    parallel_optimize(study, executor(2), max_trials=2)
    trials = check_ledger_and_git(ws)
    a, b = trials[1], trials[2]
    assert a.state == TrialState.KEEP and a.description == "X -> 2.0"
    assert b.state == TrialState.KEEP and b.extra["rebased"] is True
    assert git_parent(ws, b.commit) == a.commit == b.parent
    assert b.values == (pytest.approx(2.25),) and b.extra["stale"][0]["values"] == [pytest.approx(5.25)]
    assert all(t.extra["worker"].startswith("pid ") and t.extra["node"] for t in trials)
    # the log came back from the task; AUTORESEARCH_CACHE reached the run
    assert f"cache: {tmp_path / 'cache'}" in (ws / b.log).read_text()
    # ran in a task's own folder, not in the worktree
    assert "autoresearch-t-" in (ws / b.log).read_text()
    assert ray_local.is_initialized()          # a Ray the caller started is left running


def test_a_dying_ray_worker_is_a_crash_and_the_study_goes_on(ray_local, ws):
    study, _ = study_for(ws, [edit(MODE="killparent"), edit(MODE="killself"), edit(X=2.0)], baseline_runs=1)
    parallel_optimize(study, executor(1), max_trials=3)
    trials = check_ledger_and_git(ws)
    assert [t.state for t in trials[1:]] == [TrialState.CRASH, TrialState.CRASH, TrialState.KEEP]
    if SANDBOXED:     # the run's parent is its sandbox's init, which ignores the kill: the task is out of reach
        assert "no finite val_bpb" in trials[1].reason
    else:
        assert "Ray task died mid-run" in trials[1].reason
    assert "exit code -9" in trials[2].reason
    assert trials[3].value == pytest.approx(6.0)


def test_missing_ray_is_one_clear_error(ws, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    study, _ = study_for(ws, [edit(X=2.0)], baseline_runs=1)
    with pytest.raises(AutoresearchError, match=r"pip install 'autoresearch\[ray\]'"):
        parallel_optimize(study, executor(1), max_trials=1)


def git_parent(ws, commit):
    from tests.fakes import git
    return git(ws, "rev-parse", f"{commit}^")


def test_interrupt_cancels_ray_tasks_and_records_nothing_half_done(ray_local, ws):
    import time

    from autoresearch.executors.ray import RayExecutor
    study, _ = study_for(ws, [edit(X=2.0, SLEEP=60), edit(Y=2.0, SLEEP=60)], baseline_runs=1)

    class Interrupting(RayExecutor):
        def wait(self, handles, timeout=None):
            if len(handles) == 2:
                time.sleep(1.0)            # both runs have started in their tasks
                raise KeyboardInterrupt
            return super().wait(handles, timeout)

    t0 = time.monotonic()
    parallel_optimize(study, Interrupting(2), max_trials=2)
    assert time.monotonic() - t0 < 30
    trials = check_ledger_and_git(ws)
    assert len(trials) == 1 and study.stop_reason == "interrupted"
    # the cancelled tasks killed their runs: no trainer of theirs is left
    import psutil
    time.sleep(0.5)
    left = [p.info for p in psutil.process_iter(["cmdline", "cwd"])
            if (p.info["cmdline"] or [""])[-1:] == ["train.py"] and "autoresearch-t-" in (p.info["cwd"] or "")]
    assert not left, left
