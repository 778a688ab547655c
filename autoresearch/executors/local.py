"""Local executor: each run in its own worker process on this machine, `slots` at once.

A worker process (`python -c ...executors.local._main`) runs `base.run_job()` in
the job's worktree and leaves the pickled Measurement in a file beside the log. Cancel =
SIGTERM to the worker, which the runner turns into a kill of the run's process group; the
worker also gets SIGTERM when the driver dies. A worker that dies without answering
(killed, out of memory) is a CRASH outcome. Processes (not threads) so that a cancel reaches
exactly one run and Ctrl-C reaches every worker (they share the terminal's process group).

    ex = LocalExecutor(2); ex.start(setup); h = ex.submit(job); ex.wait([h]); ex.result(h)
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

from autoresearch import processes, runner
from autoresearch.executors.base import Executor, Job, Outcome, Setup, cancelled, crashed, hostname

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def _interrupt(signum, frame):
    """SIGTERM (cancel) or SIGINT (Ctrl-C): the runner, interrupted, kills the run's process group.
    Once: a second signal (a Ctrl-C after a cancel) must not interrupt that kill."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _main() -> None:
    """In the worker process: read (job, setup, memory, result path) from stdin, measure once,
    write ("done", Measurement) | ("cancelled", None) | ("error", text) to the result path."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    processes.die_with_parent(signal.SIGTERM)      # the driver died (kill -9): cancel, as above
    try:
        # everything the job needs, imported before it arrives: a spare worker waits warm
        import psutil  # noqa: F401  (the runner's memory watch)
        import autoresearch.harness  # noqa: F401  (unpickling the Harness)
        from autoresearch.executors.base import run_job
        job, setup, memory_limit_mb, out = pickle.load(sys.stdin.buffer)
    except (KeyboardInterrupt, EOFError):               # a spare that was never used
        return
    try:
        m = run_job(job, setup, memory_limit_mb)
        message = ("done", m)
    except KeyboardInterrupt:       # the runner has killed the run's process group already
        message = ("cancelled", None)
    except BaseException as e:      # a bug in the tool: report it as the run's crash
        import traceback
        message = ("error", f"the worker failed: {type(e).__name__}: {e}\n{traceback.format_exc()[-3000:]}")
    tmp = Path(out + ".tmp")
    tmp.write_bytes(pickle.dumps(message))
    os.replace(tmp, out)


class _Handle:
    def __init__(self, job, proc, out, slot):
        self.job, self.proc, self.out, self.slot = job, proc, out, slot
        self.cancelled = False

    def done(self) -> bool:
        # the result file appears before the worker has exited: no need to wait for its shutdown
        return os.path.exists(self.out) or self.proc.poll() is not None


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, slots: int = 1):
        self.slots = max(1, int(slots))
        self._live: dict[int, _Handle] = {}
        self._spare: subprocess.Popen | None = None    # the next worker, started ahead (python start-up)
        self._exiting: list[subprocess.Popen] = []     # workers that answered and are shutting down
        self._setup: Setup | None = None
        self._memory = 0.0
        self.node = hostname()

    def start(self, setup: Setup) -> None:
        self._setup = setup
        self._memory = setup.memory_limit_mb or runner.default_memory_limit_mb(self.slots)   # the machine, shared
        if self._spare is None:
            self._spare = self._worker()

    def submit(self, job: Job) -> _Handle:
        used = {h.slot for h in self._live.values()}
        slot = next(i for i in range(len(used) + 1) if i not in used)
        out = str(Path(job.log).with_suffix(".result.pkl"))
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).unlink(missing_ok=True)
        proc = self._spare if self._spare is not None and self._spare.poll() is None else self._worker()
        self._spare = self._worker()
        try:
            proc.stdin.write(pickle.dumps((job, self._setup, self._memory, out)))
            proc.stdin.close()
        except BrokenPipeError:       # the worker died before its job arrived: a crash outcome
            pass
        handle = _Handle(job, proc, out, slot)
        self._live[id(handle)] = handle
        return handle

    def _worker(self) -> subprocess.Popen:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH", "")) if p)
        # a plain child (not multiprocessing): nothing of the driver's __main__ is imported again,
        # and it stays in the terminal's process group, so Ctrl-C reaches it
        return subprocess.Popen([sys.executable, "-c", "from autoresearch.executors.local import _main; _main()"],
                                stdin=subprocess.PIPE, env=env)

    def wait(self, handles: list, timeout: float | None = None) -> list:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done = [h for h in handles if h.done()]
            if done or not handles or (deadline is not None and time.monotonic() >= deadline):
                return done
            time.sleep(0.005)

    def result(self, handle: _Handle) -> Outcome:
        if not os.path.exists(handle.out):
            handle.proc.wait()
        self._exiting.append(handle.proc)
        self._exiting = [p for p in self._exiting if p.poll() is None]     # reap the ones that are done
        self._live.pop(id(handle), None)
        worker = f"local-{handle.slot}"
        try:
            kind, payload = pickle.loads(Path(handle.out).read_bytes())
            Path(handle.out).unlink(missing_ok=True)
        except (OSError, EOFError, pickle.UnpicklingError):
            kind, payload = "died", None
        if kind == "done":
            return Outcome(payload, worker, self.node)
        if kind == "cancelled" or handle.cancelled:
            return cancelled(handle.job, worker, self.node)
        if kind == "error":
            return crashed(payload, handle.job.log, worker, self.node)
        code = handle.proc.returncode
        why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return crashed(f"the worker process died mid-run ({why})", handle.job.log, worker, self.node)

    def cancel(self, handle: _Handle) -> None:
        if handle.cancelled:
            return
        handle.cancelled = True
        if handle.proc.poll() is None:
            handle.proc.terminate()          # SIGTERM: the runner kills the run's group, then it exits

    def close(self) -> None:
        if self._spare is not None:
            self._spare.terminate()
            try:
                self._spare.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._spare.kill()
            self._spare = None
        for proc in self._exiting:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._exiting.clear()
        live = list(self._live.values())
        for h in live:
            self.cancel(h)
        deadline = time.monotonic() + 10
        for h in live:
            try:
                h.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                h.proc.kill()
                h.proc.wait()
            Path(h.out).unlink(missing_ok=True)
        self._live.clear()
