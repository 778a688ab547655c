"""The scheduler on a local Ray (num_cpus=2, no dashboard) over the fake harness in a real git
repo: two trials in flight, a stale candidate re-based and re-run before keep, a Ray task whose
worker process dies mid-run recorded as a crash, the cache variable reaching the task, a clear
error when Ray is missing, and torch.compile's cache (a stand-in for it in the fake harness) reaching
the runs: on the driver's disk, and on a node off it, where the baseline's cache is sent back and out."""

from __future__ import annotations

import sys

import pytest

from autoresearch.errors import AutoresearchError
from autoresearch.trial import TrialState
from tests.fakes import SANDBOXED, check_ledger_and_git, gated, trainers_of, until, value
from tests.fakes import make_study as study_for
from tests.fakes import knobs as edit

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def ws(ws_xy):
    return ws_xy


def executor(n=2):
    from autoresearch.executors.ray import RayExecutor
    return RayExecutor(n)


def test_two_ray_workers_and_a_stale_candidate_rerun_before_keep(ray_local, ws, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTORESEARCH_CACHE", str(tmp_path / "cache"))
    from autoresearch.executors.ray import RayExecutor
    study, agent = study_for(ws, [edit(Y=2.5), edit(X=2.0)])
    # trial 1's result is held until trial 2 is recorded (kept): trial 1 was measured on an old best
    ex = gated(RayExecutor, lambda ex, h: ex._live[h].trial == 1 and len(study.trials) < 2)(2)
    study.optimize(max_trials=2, executor=ex)
    trials = check_ledger_and_git(ws)
    a, b = trials[1], trials[2]
    assert a.state == TrialState.KEEP and a.description == "X -> 2.0"
    assert b.state == TrialState.KEEP and b.extra["rebased"] is True
    assert git_parent(ws, b.commit) == a.commit == b.parent
    assert b.values == (pytest.approx(value(2.0, 2.5)),)
    assert b.extra["stale"][0]["values"] == [pytest.approx(value(1.0, 2.5))]
    assert all(t.extra["worker"].startswith("pid ") and t.extra["node"] for t in trials)
    # the log came back from the task; AUTORESEARCH_CACHE reached the run
    assert f"cache: {tmp_path / 'cache'}" in (ws / b.log).read_text()
    # ran in a task's own folder, not in the worktree
    assert "autoresearch-t-" in (ws / b.log).read_text()
    assert ray_local.is_initialized()          # a Ray the caller started is left running


def test_a_dying_ray_worker_is_a_crash_and_the_study_goes_on(ray_local, ws):
    study, _ = study_for(ws, [edit(MODE="killparent"), edit(MODE="killself"), edit(X=2.0)], baseline_runs=1)
    study.optimize(max_trials=3, executor=executor(1))
    trials = check_ledger_and_git(ws)
    assert [t.state for t in trials[1:]] == [TrialState.CRASH, TrialState.CRASH, TrialState.KEEP]
    if not SANDBOXED:      # (in a sandbox the run's parent is the sandbox, which dies with it)
        assert "Ray task died mid-run" in trials[1].reason
    assert "exit code -9" in trials[2].reason or (SANDBOXED and "exit code 137" in trials[2].reason)
    assert trials[3].value == pytest.approx(value(2.0, 1.0))


def test_missing_ray_is_one_clear_error(ws, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    study, _ = study_for(ws, [edit(X=2.0)], baseline_runs=1)
    with pytest.raises(AutoresearchError, match=r"pip install 'autoresearch\[ray\]'"):
        study.optimize(max_trials=1, executor=executor(1))


def git_parent(ws, commit):
    from tests.fakes import git
    return git(ws, "rev-parse", f"{commit}^")


def test_interrupt_cancels_ray_tasks_and_records_nothing_half_done(ray_local, ws):
    from autoresearch.executors.ray import RayExecutor
    study, _ = study_for(ws, [edit(X=2.0, SLEEP=600), edit(Y=2.0, SLEEP=600)], baseline_runs=1)
    trainers = []

    class Interrupting(RayExecutor):
        def wait(self, handles, timeout=None):
            if len(handles) == 2 and len(trainers_of("autoresearch-t-")) >= 2:    # the runs train
                trainers.extend(trainers_of("autoresearch-t-"))
                raise KeyboardInterrupt
            return super().wait(handles, timeout)

    study.optimize(max_trials=2, executor=Interrupting(2))
    trials = check_ledger_and_git(ws)
    assert len(trials) == 1 and study.stop_reason == "interrupted" and len(trainers) >= 2
    # the cancelled tasks killed their runs: no trainer of theirs is left
    until(lambda: not trainers_of("autoresearch-t-"), "the cancelled runs to die")


def test_a_ray_study_runs_its_trials_from_the_baselines_compile_cache(ray_local, tmp_path):
    """On a local Ray (the driver's disk): the baseline's cold run is measured again, the trial runs warm."""
    from tests.fakes import compiling, make_fake_workspace
    ws = compiling(make_fake_workspace(tmp_path / "ws", allowance=20))
    study, _ = study_for(ws, [edit(X=2.0)], baseline_runs=2)
    study.optimize(max_trials=1, executor=executor(1))
    base, trial = check_ledger_and_git(ws)
    assert base.values == (value(), value()) and "no compile cache" in base.extra["disturbed"]
    assert trial.values == (value(2.0),) and trial.state == TrialState.KEEP       # no +1.0: it started warm


def test_a_node_off_the_drivers_disk_gets_the_baselines_compile_cache(ray_local, tmp_path):
    """A Ray task on a node that cannot see the driver's workspace (its path is not there): a baseline run
    compiles from nothing and returns the cache it leaves; a later task carries that cache and runs warm from
    the node's copy; a trial run never sends its own cache back."""
    import dataclasses
    import shutil

    from autoresearch.executors.base import Job, Setup
    from autoresearch.executors.ray import _tracked_files, node_copy, run_task
    from autoresearch.harness import Harness
    from autoresearch.hashing import contents_hash
    from autoresearch.measurement import checksums
    from tests.fakes import compiling, git, make_fake_workspace
    ws = compiling(make_fake_workspace(tmp_path / "ws", allowance=20))
    elsewhere = dataclasses.replace(Harness.load(ws), root=tmp_path / "driver" / "ws")    # not on this "node"
    setup = Setup(elsewhere, checksums(ws, elsewhere.readonly), tag="t")
    files = _tracked_files(ws)
    editable = {"train.py": files.pop("train.py")}
    task = ray_local.remote(max_retries=0)(run_task)

    def run(key, seeds, shipped=None):
        job = Job(key, ws, git(ws, "rev-parse", "HEAD"), tmp_path / f"{key}.log", tmp_path / f"{key}.pt", seeds=seeds)
        return ray_local.get(task.remote(job, files, editable, setup, {}, 0.0, shipped))

    first = run("b1", seeds=True)
    m = first["measurement"]
    assert m.value == value() + 1.0 and m.cold                  # compiled from nothing
    cache = first["compile_cache"]
    assert cache == {"inductor/graph/kernel": b"compiled"}
    assert not (tmp_path / "driver").exists()                    # nothing written where the driver's workspace is
    digest = contents_hash(cache, length=16)
    kept = node_copy(digest)
    try:
        warm = run("t1", seeds=False, shipped=(digest, cache))
        assert warm["measurement"].value == value() and not warm["measurement"].cold
        assert "compile_cache" not in warm and (kept / "inductor" / "graph" / "kernel").read_bytes() == b"compiled"
        again = run("b2", seeds=True, shipped=(digest, cache))    # a baseline re-run, warm: nothing to return
        assert again["measurement"].value == value() and "compile_cache" not in again
    finally:
        shutil.rmtree(kept, ignore_errors=True)


def test_a_ray_study_whose_node_is_off_the_drivers_disk_runs_trials_warm(ray_local, tmp_path):
    """The whole loop with its tasks on a "node" that cannot see the driver's workspace (the tasks' harness
    has another root: a second machine cannot exist here): the baseline's first run compiles from nothing and
    sends its cache back, the driver keeps it as the study's, and every run after it starts from it."""
    import dataclasses
    import shutil

    from autoresearch.executors.ray import RayExecutor, node_copy, shipment
    from autoresearch.measurement import compile_cache
    from tests.fakes import compiling, make_fake_workspace
    ws = compiling(make_fake_workspace(tmp_path / "ws", allowance=20))

    class OffDisk(RayExecutor):
        def start(self, setup):
            super().start(setup)
            away = dataclasses.replace(setup.harness, root=tmp_path / "driver" / "ws")
            self._setup_ref = ray_local.put(dataclasses.replace(setup, harness=away))

    study, _ = study_for(ws, [edit(X=2.0)], baseline_runs=2)
    study.optimize(max_trials=1, executor=OffDisk(1))
    base, trial = check_ledger_and_git(ws)
    digest, tree = shipment(compile_cache(study.harness))
    shutil.rmtree(node_copy(digest), ignore_errors=True)
    assert tree == {"inductor/graph/kernel": b"compiled"}
    assert base.values == (value(), value()) and "no compile cache" in base.extra["disturbed"]
    assert trial.values == (value(2.0),) and trial.state == TrialState.KEEP       # warm on the node too
    assert not (tmp_path / "driver").exists()


def test_a_node_keeps_the_compile_caches_used_last_and_removes_older_ones(tmp_path):
    """Each study leaves its baseline's compile cache on every node its tasks ran on (about 150 MB on the CPU,
    in the temp folder, often memory): a node keeps the copies used last and removes the rest when it keeps a
    new one. Copies being written and a baseline task's own folder are not its to remove."""
    import os

    from autoresearch.executors.ray import prune_copies
    names = [f"{i:016x}" for i in range(5)]
    for age, name in enumerate(names):
        (tmp_path / name / "inductor").mkdir(parents=True)
        os.utime(tmp_path / name, (1e9 - age * 1000, 1e9 - age * 1000))   # names[0] used last
    (tmp_path / f"{names[4]}.123.456.tmp").mkdir()                         # being written
    (tmp_path / "t-b1-4242").mkdir()                                         # a baseline task's own
    os.utime(tmp_path / "t-b1-4242", (1.0, 1.0))
    assert sorted(prune_copies(tmp_path, 3)) == names[3:]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[:3] + [f"{names[4]}.123.456.tmp", "t-b1-4242"])
    assert prune_copies(tmp_path, 3) == [] and prune_copies(tmp_path / "none", 3) == []
