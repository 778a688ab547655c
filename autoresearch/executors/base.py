"""The Executor interface and what crosses it: Setup (once per study), Job (one run), Outcome.

An executor runs one measurement per job and never judges: submit a Job -> a handle; wait for
any handles that finished; result(handle) -> Outcome (the Measurement, RunResult included,
plus which worker and node ran it); cancel(handle) kills a run in flight. A run that dies,
however it dies, comes back as a CRASH Outcome, never as an exception. Every executor runs a
job through `run_job()` below: the one place a run of a study is measured.

    ex.start(setup); h = ex.submit(job); ex.wait([h]); ex.result(h)
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch.measurement import Measurement, compile_cache, measure
from autoresearch.runner import RunResult
from autoresearch.trial import TrialState


@dataclass(frozen=True)
class Setup:
    """What every run of a study shares: sent once to each executor."""
    harness: object                  # autoresearch.harness.Harness
    readonly_sums: dict              # read-only file -> sha256 recorded when the tag started
    memory_limit_mb: float = 0.0     # per run; 0 = the executor picks one per machine
    rescore: bool = True
    tag: str = ""
    holdout: bool = False            # score the hidden holdout after each run where it ran (Ray: the model
                                     # stays on its node); local executors leave it to the loop, kept trials only


@dataclass(frozen=True)
class Job:
    """One run: the checkout at `root` is `commit`, clean; the log goes to `log` on this machine."""
    key: str                         # unique among the jobs of one driver
    root: Path                       # a worktree holding exactly `commit`
    commit: str
    log: Path
    model: Path
    trial: int = 0                   # AUTORESEARCH_TRIAL for the run: the trial's own number
    keep_model: bool = False         # leave the saved model at `model` (the loop scores a kept one's holdout)
    timeout: float | None = None     # the hard wall-clock limit (None: the harness' budget + allowance)
    pins: dict = field(default_factory=dict)     # `*_sha256` values the score must repeat (the data it read)
    prune: object = None             # a pruning.Reference: stopped when its curve falls behind it (None: never)
    seeds: bool = False              # a run of the human's code (the baseline): its compile cache seeds the rest
    seed_offset: int = 0             # AUTORESEARCH_SEED_OFFSET: added to the harness' SEED (measurement.seed_offset)


@dataclass(frozen=True)
class Outcome:
    measurement: Measurement
    worker: str = ""
    node: str = ""
    cancelled: bool = False


def run_job(job: Job, setup: Setup, memory_limit_mb: float, on_progress=None, on_start=None,
            cache: Path | None = None) -> Measurement:
    """Measure one job where it runs (a worker process, a thread, a Ray task): the one call of measure().
    The run's progress lines make its curve, and stop it where job.prune says so (autoresearch/pruning.py).
    cache: the compile cache it starts from, where not the study's own (a Ray node off the driver's disk)."""
    from autoresearch.pruning import Watch
    watch = Watch(job.prune, on_progress)
    return watch.settle(measure(job.root, setup.harness, setup.readonly_sums, job.log, job.model, memory_limit_mb,
                                setup.rescore, watch, job.trial, on_start=on_start, keep_model=job.keep_model,
                                holdout=setup.holdout, timeout=job.timeout, pins=job.pins,
                                compile_cache=cache or compile_cache(setup.harness), seeds=job.seeds,
                                seed_offset=job.seed_offset))


def crashed(reason: str, log: Path | str = "", worker: str = "", node: str = "") -> Outcome:
    """The Outcome of a run whose worker died or could not start: a CRASH, with the reason."""
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(reason + "\n")
    result = RunResult(returncode=None, timed_out=False, seconds=0.0, log_path=str(log), tail=reason,
                       killed="signal")
    return Outcome(Measurement(TrialState.CRASH, None, result, reason), worker, node)


def cancelled(job: Job, worker: str = "", node: str = "") -> Outcome:
    return Outcome(crashed("cancelled", job.log).measurement, worker, node, cancelled=True)


def hostname() -> str:
    return socket.gethostname()


class Executor:
    """Runs jobs; `slots` of them at once. `local_models`: a job's saved model lands on this machine."""
    name = "executor"
    slots = 1
    local_models = True

    def start(self, setup: Setup) -> None: ...

    def submit(self, job: Job):
        raise NotImplementedError

    def wait(self, handles: list, timeout: float | None = None) -> list:
        """The handles among `handles` that have finished (empty after timeout seconds)."""
        raise NotImplementedError

    def result(self, handle) -> Outcome:
        raise NotImplementedError

    def cancel(self, handle) -> None: ...

    def close(self) -> None: ...
