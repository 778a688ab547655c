"""Proposer: the thread that asks the agent for changes while runs go, for the scheduler.

One agent call at a time, each on the best at that moment (with tree search, on a node that
tree.py picks among the top k), in the candidate's own detached worktree; the change is checked
(Study.check) and committed there, its code hash and knobs captured. A proposal is made when it
is wanted: fewer outstanding than slots (+1 when pipelining: the next one is ready when a run
ends, and proposals start during the baseline), within max_trials. Ready candidates wait in
order; `next_ready()` hands the first one to the loop when a slot is free.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from pathlib import Path

from autoresearch import knobs, tree
from autoresearch.candidate import Candidate
from autoresearch.errors import AgentError
from autoresearch.trial import TrialState

POLL = 0.05


class Proposer:
    def __init__(self, scheduler, pipeline: bool = True):
        self.s = scheduler
        self.pipeline = pipeline
        self.ready: collections.deque[Candidate] = collections.deque()
        self.open = 0                      # proposed (or being proposed), not yet recorded or dropped
        self.proposing: tuple = (None, 0.0)   # (number, since) of the proposal being made
        self._busy = 0
        self._head = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ the loop's side
    def start(self, head: str) -> None:
        self._head = head
        self._thread = threading.Thread(target=self._loop, name="autoresearch-proposer", daemon=True)
        self._thread.start()

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def idle(self) -> bool:
        with self.s.cv:
            return not self.ready and not self._busy

    def stop(self) -> None:
        self._stop.set()
        with self.s.cv:
            self.s.cv.notify_all()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=2)     # an agent call in flight is abandoned (daemon)

    def take_all(self) -> list[Candidate]:
        with self.s.cv:
            left = list(self.ready)
            self.ready.clear()
        return left

    def done(self, cand: Candidate) -> None:
        """A candidate was recorded (or dropped): room for another proposal."""
        with self.s.cv:
            self.open -= 1
            self.s.cv.notify_all()

    def next_ready(self, full: bool) -> Candidate | None:
        """The first ready candidate, when it can go now: one that never runs goes when a slot is
        free (so one slot records in proposal order); a runnable one needs a free slot. Stopping:
        a runnable one is dropped (never recorded, its number given again), an unrun one recorded."""
        s = self.s
        while True:
            with s.cv:
                if not self.ready:
                    return None
                cand = self.ready[0]
                if s.draining and cand.unrun is None:
                    self.ready.popleft()
                    self.open -= 1
                    s.trees.remove(cand.path)
                    continue
                if full and not s.draining:
                    waiting = [c for c in self.ready if c.unrun is None and not c.at_risk and not c.risk_checked]
                    running = [c for c, _, _ in s.inflight.values() if c.commit and c.kind != "baseline"]
                else:
                    return self.ready.popleft()
            if self.pipeline and waiting:
                self._mark_at_risk(waiting, running)
            return None

    def _mark_at_risk(self, waiting: list, running: list) -> None:
        """A waiting proposal whose change conflicts with a run in flight on the same base."""
        for cand in waiting:
            for other in running:
                if other.base == cand.base and self.s.trees.conflicts(other.commit, cand.commit):
                    cand.at_risk = True
                    with self.s.cv:
                        self.s.cv.notify_all()
                    break
            cand.risk_checked = True

    # ------------------------------------------------------------------ the thread
    def _wanted(self) -> bool:
        s = self.s
        if s.draining or self._stop.is_set():
            return False
        if s.budget is not None and s.recorded + self.open >= s.budget:
            return False
        if not self.pipeline and s.study.best is None:
            return False                 # not pipelined: the first proposal sees the baseline's result
        # a waiting proposal that conflicts with a run in flight is lost if that run is kept:
        # one more is prepared for it, so a slot never waits on the agent after such a keep
        at_risk = sum(1 for c in self.ready if c.at_risk) if self.pipeline else 0
        return self.open - at_risk < s.workers + (1 if self.pipeline else 0)

    def _loop(self) -> None:
        s = self.s
        try:
            while not self._stop.is_set():
                with s.cv:
                    if not self._wanted():
                        s.cv.wait(POLL)
                        continue
                    self._busy += 1
                    self.open += 1
                try:
                    cand = self._propose()
                finally:
                    with s.cv:
                        self._busy -= 1
                        self.proposing = (None, 0.0)
                with s.cv:
                    if cand is not None:
                        self.ready.append(cand)
                    else:
                        self.open -= 1
                    s.cv.notify_all()
        except BaseException as e:       # a broken tool (git) surfaces in the main thread
            self._error = e
            with s.cv:
                s.cv.notify_all()

    def _propose(self) -> Candidate | None:
        s, study = self.s, self.s.study
        with s.trees.lock:
            number = study.new_number()
            node = tree.node_for(study, number)     # the best, or with tree search one of the top k
            base = node.commit if node is not None else self._head
            cand = Candidate(number=number, base=base)
            cand.improves = node.number if node is not None and node is not study.best else None
            cand.path = s.trees.add(f"{s.ws.tag}-{number}", base)
        self.proposing = (number, time.time())
        ctx = study.context(number, cand.path)
        if cand.improves is not None:           # the agent is told which node its files are
            ctx = dataclasses.replace(ctx, node=node)
        t0 = time.monotonic()
        guard = s.ws.guard()
        try:
            proposal = study.agent.propose(ctx)
        except Exception as e:   # an agent's crash or timeout is a trial, not the end of the study
            kind = "agent failed" if isinstance(e, AgentError) else f"agent crashed ({type(e).__name__})"
            cand.agent_seconds = time.monotonic() - t0
            cand.description = f"{kind}: {e}"
            cand.unrun = (TrialState.INVALID, f"{kind}: {e}")
            cand.agent_failed = True
            return cand
        if self._stop.is_set():
            s.trees.remove(cand.path)
            return None
        cand.agent_seconds = time.monotonic() - t0
        cand.proposal = proposal
        cand.description = study.describe(proposal)
        tampered = s.ws.tampered(guard)
        if tampered:
            cand.unrun = (TrialState.INVALID, f"the agent changed git's own files ({', '.join(tampered[:5])}): restored")
            cand.agent_failed = True
            return cand
        why = study.check(cand.path, proposal)
        if why:
            cand.unrun = (TrialState.INVALID, why)
            return cand
        cand.commit = s.trees.commit(cand.path, f"trial {number}: {cand.description}")
        self.fingerprint(cand)
        return cand

    def fingerprint(self, cand: Candidate, root: Path | None = None) -> None:
        """Code hash and knob values of the candidate as committed (read from its worktree, or root:
        the main tree, for the baseline)."""
        editable, root = self.s.harness.editable, Path(root or cand.path)
        cand.code_hash = self.s.trees.tree(root).code_hash(editable)
        try:
            source = "\n".join((root / f).read_text() for f in editable if f.endswith(".py") and (root / f).exists())
            cand.knobs = {k: v.value for k, v in knobs.find(source).items()}
        except (SyntaxError, ValueError, OSError):
            cand.knobs = None
