"""Executors: where runs happen. `local` (processes on this machine, one run per slot) or `ray`
(Ray tasks across the GPUs and nodes of a cluster; a local Ray by default).

An executor runs one measurement per job and never judges: submit a Job -> a handle; wait for
any handles that finished; result(handle) -> Outcome (the Measurement, RunResult included,
plus which worker and node ran it); cancel(handle) kills a run in flight. A run that dies,
however it dies, comes back as a CRASH Outcome, never as an exception.

    from autoresearch.executors import parallel_optimize
    parallel_optimize(study)            # study.config.workers trials in flight
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from autoresearch.errors import ConfigError
from autoresearch.measurement import Measurement
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
    holdout: bool = True             # score the hidden holdout after each run of record (kept trials keep it)


@dataclass(frozen=True)
class Job:
    """One run: the checkout at `root` is `commit`, clean; the log goes to `log` on this machine."""
    key: str                         # unique among the jobs of one driver
    root: Path                       # a worktree holding exactly `commit`
    commit: str
    log: Path
    model: Path
    trial: int = 0                   # AUTORESEARCH_TRIAL for the run (a provisional number)


@dataclass(frozen=True)
class Outcome:
    measurement: Measurement
    worker: str = ""
    node: str = ""
    cancelled: bool = False


def crashed(reason: str, log: Path | str = "", worker: str = "", node: str = "") -> Outcome:
    """The Outcome of a run whose worker died or could not start: a CRASH, with the reason."""
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(reason + "\n")
    result = RunResult(returncode=None, timed_out=False, seconds=0.0, log_path=str(log), tail=reason,
                       killed="signal")
    return Outcome(Measurement(TrialState.CRASH, None, result, reason), worker, node)


def hostname() -> str:
    return socket.gethostname()


class Executor:
    """Runs jobs; `slots` of them at once."""
    name = "executor"
    slots = 1

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


def get_executor(config) -> Executor:
    """The executor the config names, sized to config.workers."""
    if config.executor == "local":
        from autoresearch.executors.local import LocalExecutor
        return LocalExecutor(config.workers)
    if config.executor == "ray":
        from autoresearch.executors.ray import RayExecutor
        return RayExecutor(config.workers, address=config.ray_address or os.environ.get("RAY_ADDRESS", ""))
    raise ConfigError(f"unknown executor {config.executor!r}; known: local, ray")


def parallel_optimize(study, executor: Executor | None = None, max_trials: int | None = None,
                      hours: float | None = None, max_cost: float | None = None, pipeline: bool = True):
    """Run the study with config.workers trials in flight (see autoresearch.scheduler)."""
    from autoresearch.scheduler import Scheduler
    executor = executor or get_executor(study.config)
    return Scheduler(study, executor, pipeline=pipeline).optimize(max_trials, hours, max_cost)
