"""Inline executor: each run in a thread of this process, `slots` at once (1 by default).

The run itself is a child process group (runner.py) either way; what a thread saves over a
worker process is a Python start-up per run and, more useful, direct sight of the run: its
progress reaches the live line and its process group id reaches running.json (a resume after
kill -9 kills an orphaned run by that id). Cancel = kill the run's process group; the thread
then classifies the killed run and ends. `--workers 1` on this machine runs here.

    ex = InlineExecutor(); ex.start(setup); h = ex.submit(job); ex.wait([h]); ex.result(h)
"""

from __future__ import annotations

import threading
import time

from autoresearch import processes, runner
from autoresearch.executors.base import Executor, Job, Outcome, Setup, cancelled, crashed, hostname, run_job


class _Handle:
    def __init__(self, job: Job, slot: int):
        self.job, self.slot = job, slot
        self.pgid: int | None = None          # the run's process group, once it started
        self.outcome: Outcome | None = None
        self.cancelled = False
        self.done = threading.Event()
        self.thread: threading.Thread | None = None


class InlineExecutor(Executor):
    name = "inline"

    def __init__(self, slots: int = 1, on_progress=None, on_start=None):
        self.slots = max(1, int(slots))
        self.on_progress = on_progress        # fn(job, runner.Progress): the live line
        self.on_start = on_start              # fn(job, pgid): running.json
        self.node = hostname()
        self._live: dict[int, _Handle] = {}
        self._setup: Setup | None = None
        self._memory = 0.0

    def start(self, setup: Setup) -> None:
        self._setup = setup
        self._memory = setup.memory_limit_mb or runner.default_memory_limit_mb(self.slots)

    def submit(self, job: Job) -> _Handle:
        used = {h.slot for h in self._live.values()}
        handle = _Handle(job, next(i for i in range(len(used) + 1) if i not in used))
        self._live[id(handle)] = handle
        handle.thread = threading.Thread(target=self._run, args=(handle,), name=f"autoresearch-run-{job.key}",
                                         daemon=True)
        handle.thread.start()
        return handle

    def _run(self, handle: _Handle) -> None:
        job, worker = handle.job, f"inline-{handle.slot}"

        def started(pgid: int) -> None:
            handle.pgid = pgid
            if handle.cancelled:              # cancelled while it was starting
                processes.kill_group(pgid, grace=1.0)
            if self.on_start is not None:
                self.on_start(job, pgid)

        progress = None if self.on_progress is None else (lambda p: self.on_progress(job, p))
        try:
            m = run_job(job, self._setup, self._memory, on_progress=progress, on_start=started)
            handle.outcome = Outcome(m, worker, self.node)
        except BaseException as e:            # a bug in the tool: the run's crash, with the reason
            import traceback
            handle.outcome = crashed(f"the run failed in the tool: {type(e).__name__}: {e}\n"
                                     f"{traceback.format_exc()[-3000:]}", job.log, worker, self.node)
        finally:
            handle.done.set()

    def wait(self, handles: list, timeout: float | None = None) -> list:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done = [h for h in handles if h.done.is_set()]
            if done or not handles:
                return done
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return []
            handles[0].done.wait(0.02 if left is None else min(0.02, left))

    def result(self, handle: _Handle) -> Outcome:
        handle.done.wait()
        self._live.pop(id(handle), None)
        if handle.cancelled:
            return cancelled(handle.job, f"inline-{handle.slot}", self.node)
        return handle.outcome

    def cancel(self, handle: _Handle) -> None:
        handle.cancelled = True
        if handle.pgid is not None and not handle.done.is_set():
            processes.kill_group(handle.pgid, grace=1.0)

    def close(self) -> None:
        live = list(self._live.values())
        for h in live:
            self.cancel(h)
        for h in live:
            h.done.wait(15)
        self._live.clear()
