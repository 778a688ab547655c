"""Scheduler: the study with N trials in flight, proposals pipelined, stale candidates re-based.

    propose (one agent call at a time, in a thread, on top of the best at that moment, in its
    own detached worktree) -> commit there -> run on an executor slot -> judge -> record -> keep

- Pipelining: one proposal more than there are slots is prepared while runs go (one agent
  call at a time), so a slow agent's latency hides behind the runs: with one worker the next
  proposal is ready when the current run ends. A waiting proposal whose change conflicts with
  a run in flight (`git merge-tree`) would be lost if that run is kept, so one more is
  prepared for it. Proposals start during the baseline, on its commit.
- One rule keeps the branch honest: a candidate is kept only if it was measured on the best
  as it is when the verdict comes. A proposal whose base is no longer the best is
  cherry-picked onto the best before it runs; a candidate measured on a base that stopped
  being the best while it ran is judged against its own base, and if it looks better it is
  cherry-picked onto the new best and run again before it can be kept. A conflict (or a
  change that is already in the best) is a DISCARD with that reason. The branch stays
  linear and every kept commit was measured exactly as committed.
- Trial numbers are given when a trial is recorded, so they stay unique and gap-free in the
  ledger's order; the ledger row is fsynced before the branch moves (`reset --hard` on keep).
- Ctrl-C cancels the runs in flight, removes the worktrees and records nothing half-done; a
  killed driver leaves stale worktrees that the next start removes (their trials run again).

    Scheduler(study, LocalExecutor(4)).optimize(max_trials=20)
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch import knobs
from autoresearch.errors import AgentError, AutoresearchError
from autoresearch.executors import Executor, Job, Setup
from autoresearch.judge import CONFIRM, DISCARD, KEEP
from autoresearch.trial import Trial, TrialState
from autoresearch.workspace import Workspace, _identity_args, git_argv, git_env

POLL = 0.05          # seconds between looks at the executor and the proposal queue


@dataclass
class Candidate:
    """One proposal on its way to becoming a recorded trial."""
    seq: int                          # provisional id; the trial number is given when recorded
    base: str                         # the best commit it was proposed (or last re-based) on
    path: Path | None = None          # its worktree
    commit: str = ""
    description: str = ""
    proposal: object = None
    agent_seconds: float = 0.0
    agent_failed: bool = False
    started: float = field(default_factory=time.time)
    code_hash: str = ""
    knobs: dict | None = None
    unrun: tuple | None = None        # (state, reason): never runs
    runs: list = field(default_factory=list)     # every Measurement, stale ones included
    values: list = field(default_factory=list)   # measurements of `commit` (as committed)
    rebased: bool = False
    stale: list = field(default_factory=list)    # {"base", "commit", "values"} per re-base
    worker: str = ""
    node: str = ""
    running_since: float = 0.0
    twin_value: float | None = None
    at_risk: bool = False             # conflicts with a run in flight: lost if that run is kept
    risk_checked: bool = False


class Scheduler:
    def __init__(self, study, executor: Executor, workers: int | None = None, pipeline: bool = True):
        self.study = study
        self.ws: Workspace = study.ws
        self.harness = study.harness
        self.executor = executor
        self.workers = max(1, workers or executor.slots or study.config.workers)
        self.pipeline = pipeline
        self.wt_dir = self.ws.root / ".autoresearch" / self.ws.tag / "worktrees"
        self.log_dir = self.ws.root / ".autoresearch" / "logs"
        self._git = threading.RLock()             # every git command that moves a tree or a ref
        self._cv = threading.Condition()
        self._ready: collections.deque[Candidate] = collections.deque()
        self._proposing = 0
        self._open = 0
        self._inflight: dict = {}                 # executor handle -> Candidate
        self._seq = 0
        self._runs = 0
        self._stop = threading.Event()
        self._draining = False
        self._budget_left: int | None = None      # proposals still allowed (max_trials)
        self._recorded = 0
        self._failures = 0
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._ident: list | None = None
        self._head = ""
        self._ctx_number = -1
        self._move_to = ""                         # a kept commit the branch has not moved to yet
        self._trash: list[Candidate] = []          # recorded: worktrees removed off the critical path

    # ------------------------------------------------------------------ the loop
    def optimize(self, max_trials: int | None = None, hours: float | None = None,
                 max_cost: float | None = None) -> list[Trial]:
        study = self.study
        max_trials, hours, max_cost = study.begin(max_trials, hours, max_cost)
        self._remove_stale_worktrees()
        self.executor.start(Setup(self.harness, dict(study._readonly_sums), study.config.memory_limit_mb,
                                  study.config.rescore, self.ws.tag))
        start = time.monotonic()
        self._budget_left = max_trials
        failed = None
        self._head = self.ws.head()
        try:
            # proposals start at once: during a baseline they are made on its commit (the best-to-be)
            self._thread = threading.Thread(target=self._propose_loop, name="autoresearch-proposer", daemon=True)
            self._thread.start()
            if study.best is None:
                self._baseline()
            while True:
                if self._error is not None:
                    raise self._error
                if not self._draining:
                    reason = self._limit(max_trials, hours, max_cost, start)
                    if reason:
                        self._drain(reason)
                self._take_ready()
                self._move_branch()
                self._empty_trash()
                with self._cv:
                    idle = not self._inflight and not self._ready and not self._proposing
                if self._draining and idle:
                    break
                handles = list(self._inflight)
                if handles:
                    for handle in self.executor.wait(handles, POLL):
                        self._finished(handle)
                else:
                    with self._cv:
                        self._cv.wait(POLL)
                self._write_running()
                if self._failures >= study.config.max_agent_failures and failed is None:
                    failed = f"the agent failed {self._failures} times in a row; last: {study.trials[-1].reason}"
                    self._drain(failed)
        except KeyboardInterrupt:
            study.stop_reason = "interrupted"
        finally:
            self._shutdown()
        study.display.message(f"stopped: {study.stop_reason}")
        if failed is not None and study.stop_reason == failed:
            raise AgentError(f"stopping: {failed}")
        return study.trials

    def _limit(self, max_trials, hours, max_cost, start) -> str:
        if max_trials is not None and self._recorded >= max_trials:
            return f"reached {max_trials} trials"
        if hours is not None and time.monotonic() - start >= hours * 3600:
            return f"reached {hours} hours"
        spent = sum(t.cost_usd for t in self.study.trials)
        if max_cost is not None and spent >= max_cost:
            return f"reached the cost limit (${spent:.2f} of ${max_cost:.2f})"
        return ""

    def _drain(self, reason: str) -> None:
        """No new proposals or runs; what is in flight finishes and is recorded."""
        self.study.stop_reason = reason
        self._draining = True
        with self._cv:
            self._cv.notify_all()

    def _shutdown(self) -> None:
        """Cancel what still runs, remove every worktree, put the main tree on the best."""
        self._stop.set()
        self._draining = True
        with self._cv:
            self._cv.notify_all()
        for handle in list(self._inflight):
            self.executor.cancel(handle)
        try:
            self.executor.close()
        finally:
            self._inflight.clear()
            if self._thread is not None:
                self._thread.join(timeout=2)     # an agent call in flight is abandoned (daemon)
            with self._cv:
                left = list(self._ready)
                self._ready.clear()
            with self._git:
                self._move_to = ""              # _restore_best below puts the branch on the best
                for cand in left + self._trash:
                    self._remove(cand)
                self._trash.clear()
                self._remove_stale_worktrees()
                self.study._restore_best()      # also clears running.json

    # ------------------------------------------------------------------ baseline
    def _baseline(self) -> None:
        """The baseline's repeats run side by side (up to the slots), each in its own worktree."""
        study, ws = self.study, self.ws
        commit = ws.head()
        pending = study.config.baseline_runs
        started = time.time()
        study.display.message(f"[baseline] {pending} run(s) on {min(pending, self.workers)} slot(s)")
        cands, runs, failed = [], [], None
        try:
            while (pending and failed is None) or self._inflight:
                while pending and failed is None and len(self._inflight) < self.workers:
                    pending -= 1
                    cand = Candidate(seq=self._next_seq(), base=commit, commit=commit, description="baseline")
                    cand.path = self._add_worktree(cand.seq, commit)
                    cands.append(cand)
                    self._submit(cand)
                self._write_running()
                for handle in self.executor.wait(list(self._inflight), POLL):
                    cand = self._inflight.pop(handle)
                    out = self.executor.result(handle)
                    if out.measurement.value is None:
                        failed = failed or (out, cand)
                        self._cancel_all()     # a failing baseline fails every time: stop early
                    else:
                        runs.append((out, cand))
        finally:
            with self._git:
                for cand in cands:
                    self._remove(cand)
        outs = [o for o, _ in runs] + ([failed[0]] if failed else [])
        number = study._next_number()
        ms = self._finalize_logs([o.measurement for o in outs], number)
        last = ms[-1]
        values = [m.value for m in ms if m.value is not None]
        seconds = sum(m.result.seconds for m in ms)
        training = sum(float(m.result.metric("training_seconds") or 0.0) for m in ms)
        extra = {"worker": outs[-1].worker, "node": outs[-1].node, "base": commit, "rebased": False,
                 "workers": self.workers}
        if last.holdout is not None and failed is None:
            extra["holdout"] = last.holdout
        if failed is not None:
            trial = study._trial(number, last.state, "baseline", commit=commit, parent=commit, values=(), m=last,
                                 seconds=seconds, training=training, kind="baseline", started=started,
                                 reason=last.reason)
            study._record(trial.replace(extra={**trial.extra, **extra}))
            raise AutoresearchError(f"the baseline failed ({last.state.value}: "
                                    f"{last.reason.splitlines()[0] if last.reason else ''}); fix the harness, "
                                    f"see the log {last.result.log_path}")
        _fit(study, values)
        trial = study._trial(number, TrialState.KEEP, "baseline", commit=commit, parent=commit, values=tuple(values),
                             m=last, seconds=seconds, training=training, kind="baseline", started=started,
                             reason=f"noise sd {study.judge.sd:.6f} from {len(values)} runs")
        ws.pin(number, commit)
        study._record(trial.replace(extra={**trial.extra, **extra}))
        study.best = study.trials[-1]

    # ------------------------------------------------------------------ proposing (a thread)
    def _wanted(self) -> bool:
        if self._draining or self._stop.is_set():
            return False
        outstanding = self._open         # proposed or being proposed, not yet recorded or dropped
        if self._budget_left is not None and self._recorded + outstanding >= self._budget_left:
            return False
        # a waiting proposal that conflicts with a run in flight is lost if that run is kept:
        # one more is prepared for it, so a slot never waits on the agent after such a keep
        at_risk = sum(1 for c in self._ready if c.at_risk) if self.pipeline else 0
        return outstanding - at_risk < self.workers + (1 if self.pipeline else 0)

    def _propose_loop(self) -> None:
        try:
            while not self._stop.is_set():
                with self._cv:
                    if not self._wanted():
                        self._cv.wait(POLL)
                        continue
                    self._proposing += 1
                    self._open += 1
                    seq = self._next_seq()
                try:
                    cand = self._propose(seq)
                finally:
                    with self._cv:
                        self._proposing -= 1
                with self._cv:
                    if cand is not None:
                        self._ready.append(cand)
                    else:
                        self._open -= 1
                    self._cv.notify_all()
        except BaseException as e:       # a broken tool (git) surfaces in the main thread
            self._error = e
            with self._cv:
                self._cv.notify_all()

    def _propose(self, seq: int) -> Candidate | None:
        study, h = self.study, self.harness
        with self._git:
            base = study.best.commit if study.best is not None else self._head
            cand = Candidate(seq=seq, base=base)
            cand.path = self._add_worktree(seq, base)
            # a provisional number, never given twice (seeded agents draw from it); the trial's
            # own number is given when it is recorded
            self._ctx_number = max(self._ctx_number + 1, study._next_number())
            ctx = study.context(self._ctx_number)
        files = {n: (cand.path / n).read_text(errors="replace") if (cand.path / n).exists() else "" for n in h.editable}
        program = cand.path / h.program
        ctx = dataclasses.replace(ctx, root=cand.path, files=files,
                                  program=program.read_text(errors="replace") if program.exists() else ctx.program)
        t0 = time.monotonic()
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
            with self._git:
                self._remove(cand)
            return None
        cand.agent_seconds = time.monotonic() - t0
        cand.proposal = proposal
        cand.description = " ".join((proposal.description or "").split())[:300] or "(no description)"
        wt = Workspace(cand.path, tag=self.ws.tag)
        changed = wt.changed_files()
        outside = [f for f in changed if f not in h.editable]
        missing = [f for f in h.editable if not (cand.path / f).exists()]
        if proposal.invalid:
            cand.unrun = (TrialState.INVALID, f"no usable change: {proposal.invalid}")
        elif not changed:
            cand.unrun = (TrialState.INVALID, "no change: the agent left the files as they were")
        elif outside:
            cand.unrun = (TrialState.INVALID, f"touched files outside the editable ones: {', '.join(outside[:10])}")
        elif missing:
            cand.unrun = (TrialState.INVALID, f"deleted an editable file: {', '.join(missing)}")
        if cand.unrun is None:
            with self._git:
                cand.commit = wt.commit(f"autoresearch: {cand.description}")
            self._fingerprint(cand)
        return cand

    def _fingerprint(self, cand: Candidate) -> None:
        """Code hash and knob values of the candidate as committed (read from its worktree)."""
        wt = Workspace(cand.path, tag=self.ws.tag)
        cand.code_hash = wt.code_hash(self.harness.editable)
        try:
            source = "\n".join((cand.path / f).read_text() for f in self.harness.editable
                               if f.endswith(".py") and (cand.path / f).exists())
            cand.knobs = {k: v.value for k, v in knobs.find(source).items()}
        except (SyntaxError, ValueError, OSError):
            cand.knobs = None

    # ------------------------------------------------------------------ running
    def _take_ready(self) -> None:
        """Record proposals that never run; start the others while slots are free."""
        while True:
            with self._cv:
                if not self._ready:
                    return
                cand = self._ready[0]
                full = cand.unrun is None and (len(self._inflight) >= self.workers or self._draining)
                if full and self._draining:     # stopping: an unstarted proposal is dropped, never recorded
                    self._ready.popleft()
                    self._open -= 1
                    with self._git:
                        self._remove(cand)
                    continue
                if full:
                    waiting = [c for c in self._ready if c.unrun is None and not c.at_risk and not c.risk_checked]
                    running = [c for c in self._inflight.values() if c.commit]
                else:
                    self._ready.popleft()
            if full:
                if self.pipeline and waiting:
                    self._mark_at_risk(waiting, running)
                return
            if cand.unrun is None and cand.base != self.study.best.commit:
                self._rebase(cand)
            if cand.unrun is None:
                self._twin(cand)
            if cand.unrun is not None:
                self._record(cand, *cand.unrun)
                continue
            self._submit(cand)

    def _mark_at_risk(self, waiting: list, running: list) -> None:
        """A waiting proposal whose change conflicts with a run in flight on the same base."""
        for cand in waiting:
            for other in running:
                if other.base != cand.base:
                    continue
                r = subprocess.run(git_argv("merge-tree", "--write-tree", "--no-messages", other.commit, cand.commit),
                                   cwd=self.ws.root, capture_output=True, text=True, env=git_env())
                if r.returncode == 1:       # 1: conflicts; 0: merges cleanly; else: git cannot tell
                    cand.at_risk = True
                    with self._cv:
                        self._cv.notify_all()
                    break
            cand.risk_checked = True

    def _twin(self, cand: Candidate) -> None:
        twin = next((t for t in self.study.trials if t.code_hash == cand.code_hash and t.commit), None)
        if twin is not None:
            state = TrialState.DISCARD if twin.state in (TrialState.KEEP, TrialState.DISCARD) else twin.state
            cand.unrun = (state, f"same code as trial {twin.number}: not run again")
            cand.commit, cand.twin_value = "", twin.value
            return
        if any(c.code_hash == cand.code_hash for c in self._inflight.values()):
            cand.unrun = (TrialState.DISCARD, "same code as a trial in flight: not run twice")
            cand.commit = ""

    def _submit(self, cand: Candidate) -> None:
        self._runs += 1
        key = f"{cand.seq}.{len(cand.runs)}"
        job = Job(key=key, root=cand.path, commit=cand.commit,
                  log=self.log_dir / f"{self.ws.tag}-inflight-{key}.log",
                  model=self.ws.root / ".autoresearch" / "models" / f"{self.ws.tag}-inflight-{key}.pt",
                  trial=self.study._next_number() + len(self._inflight))
        cand.running_since = time.time()
        handle = self.executor.submit(job)
        self._inflight[handle] = cand
        self.study.display.message(f"[c{cand.seq}] started{' (re-based)' if cand.rebased else ''}: {cand.description}")

    def _finished(self, handle) -> None:
        study = self.study
        cand = self._inflight.pop(handle)
        out = self.executor.result(handle)
        m = out.measurement
        cand.runs.append(m)
        cand.worker, cand.node = out.worker, out.node
        if out.cancelled:
            return
        if m.value is None:
            self._record(cand, m.state, m.reason)
            return
        cand.values.append(m.value)
        base = self._trial_at(cand.base)
        decision = study.judge.decide(cand.values, list(base.values) or [base.value])
        stale = cand.base != study.best.commit
        if stale and decision.verdict != DISCARD:
            self._rebase(cand, measured=True)
            if cand.unrun is None:
                self._twin(cand)
            if cand.unrun is not None:
                self._record(cand, *cand.unrun)
            else:
                self._submit(cand)
            return
        if decision.verdict == CONFIRM:
            study.display.message(f"  close call ({decision.explain()}): measuring again")
            self._submit(cand)
            return
        reason = decision.explain()
        if stale:
            reason = f"vs its base trial {base.number}: {reason}"
        state = TrialState.KEEP if decision.verdict == KEEP else TrialState.DISCARD
        self._record(cand, state, reason, margin=decision.margin)

    def _trial_at(self, commit: str) -> Trial:
        return next(t for t in reversed(self.study.trials) if t.commit == commit and t.state == TrialState.KEEP)

    def _rebase(self, cand: Candidate, measured: bool = False) -> None:
        """Cherry-pick the candidate onto the best, in its worktree; a conflict is a DISCARD."""
        best = self.study.best
        old_base, old_commit = cand.base, cand.commit
        cand.stale.append({"base": old_base, "commit": old_commit, "values": list(cand.values)})
        wt = Workspace(cand.path, tag=self.ws.tag)
        if self._ident is None:
            self._ident = _identity_args(self.ws.root)
        with self._git:
            wt.git("reset", "-q", "--hard", best.commit)      # a detached worktree: HEAD moves, no branch
            r = subprocess.run(git_argv(*self._ident, "cherry-pick", old_commit), cwd=cand.path,
                               capture_output=True, text=True, env=git_env())
            if r.returncode == 0:
                picked = wt.head()
            else:
                conflicted = wt.git("diff", "--name-only", "--diff-filter=U", check=False).split()
                wt.git("cherry-pick", "--abort", check=False)
                wt.git("reset", "-q", "--hard", best.commit, check=False)
                text = (r.stdout + r.stderr).strip()
                if conflicted:
                    why = f"re-basing onto trial {best.number} [{best.commit[:7]}] conflicted in {', '.join(conflicted)}"
                elif "empty" in text:
                    why = f"its change is already in the best (trial {best.number})"
                else:
                    why = f"re-basing onto trial {best.number} failed: {text.splitlines()[-1] if text else r.returncode}"
                cand.unrun = (TrialState.DISCARD, why)
                cand.base, cand.commit, cand.rebased = best.commit, "", True
                return
        cand.base, cand.commit, cand.values, cand.rebased = best.commit, picked, [], True
        self._fingerprint(cand)
        if measured:
            self.study.display.message(f"[c{cand.seq}] measured on an old best: re-based onto trial {best.number}")

    def _cancel_all(self) -> None:
        for handle in list(self._inflight):
            self.executor.cancel(handle)
        for handle in list(self._inflight):
            self.executor.wait([handle], 15)
            self.executor.result(handle)
        self._inflight.clear()

    # ------------------------------------------------------------------ recording
    def _record(self, cand: Candidate, state: TrialState, reason: str, margin: float | None = None) -> Trial:
        study, ws = self.study, self.ws
        number = study._next_number()
        ms = self._finalize_logs(cand.runs, number)
        current = ms[len(ms) - len(cand.values):] if cand.values else ms[-1:]
        last = current[-1] if current else None
        values = tuple(cand.values) if state in (TrialState.KEEP, TrialState.DISCARD) and cand.commit else ()
        seconds = sum(m.result.seconds for m in ms)
        training = sum(float(m.result.metric("training_seconds") or 0.0) for m in ms)
        ran = bool(cand.commit) and bool(ms)
        if ran and len(values) >= 2:
            _fit(study, values)
        trial = study._trial(number, state, cand.description, commit=cand.commit if ran else "", parent=cand.base,
                             values=values, m=last if ran else None, seconds=seconds, training=training,
                             started=cand.started, reason=reason, margin=margin, code_hash=cand.code_hash if ran else "",
                             agent_seconds=cand.agent_seconds, cost=study._cost(cand.proposal) if cand.proposal else 0.0,
                             proposal=cand.proposal, value=getattr(cand, "twin_value", None))
        extra = dict(trial.extra)
        extra.pop("knobs", None)
        if cand.knobs is not None:
            extra["knobs"] = cand.knobs
        extra.update(worker=cand.worker, node=cand.node, base=cand.base, rebased=cand.rebased)
        if state == TrialState.KEEP and last is not None and last.holdout is not None:
            extra["holdout"] = last.holdout    # kept trials only, as the serial loop; agents never see it
        if cand.stale:
            extra["stale"] = cand.stale
        trial = trial.replace(extra=extra)
        if not ran and ms and ms[-1].result.log_path:     # measured, then its re-base failed
            trial = trial.replace(log=os.path.relpath(ms[-1].result.log_path, ws.root))
        if trial.commit:
            with self._git:
                ws.pin(number, trial.commit)
        study._record(trial)                   # fsynced before git moves
        self._recorded += 1
        if cand.agent_failed or (state == TrialState.INVALID and not ran):   # an unusable proposal is a failure
            self._failures += 1
        elif cand.proposal is not None:
            self._failures = 0
        if state == TrialState.KEEP:
            study.best = trial
            self._move_to = trial.commit       # the branch moves right after the next run starts
        self._trash.append(cand)
        with self._cv:
            if cand.description != "baseline":
                self._open -= 1
            self._cv.notify_all()
        return trial

    def _finalize_logs(self, runs: list, number: int) -> list:
        """Give the runs' logs their trial's number: <tag>-<n>.log, <tag>-<n>.1.log, ..."""
        out = []
        for i, m in enumerate(runs):
            old = Path(m.result.log_path) if m.result.log_path else None
            if old is None or not old.exists():
                out.append(m)
                continue
            new = self.log_dir / f"{self.ws.tag}-{number}{'.' + str(i) if i else ''}.log"
            os.replace(old, new)
            for suffix in (".score.log", ".holdout.log"):
                if old.with_suffix(suffix).exists():
                    os.replace(old.with_suffix(suffix), new.with_suffix(suffix))
            out.append(dataclasses.replace(m, result=dataclasses.replace(m.result, log_path=str(new))))
        return out

    # ------------------------------------------------------------------ worktrees, status
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _add_worktree(self, seq: int, commit: str) -> Path:
        path = self.wt_dir / f"c{seq}"
        with self._git:
            if path.exists():
                self.ws.remove_worktree(path)
                shutil.rmtree(path, ignore_errors=True)
            self.wt_dir.mkdir(parents=True, exist_ok=True)
            self.ws.add_worktree(path, commit)
        return path

    def _move_branch(self) -> None:
        """Keep = move the branch to the kept commit (a fast-forward: its parent is the best) and
        the main worktree with it. Always after the ledger row; deferred past the next submit."""
        if self._move_to:
            with self._git:
                self.ws.reset_hard(self._move_to)
            self._move_to = ""

    def _empty_trash(self) -> None:
        with self._git:
            while self._trash:
                self._remove(self._trash.pop())

    def _remove(self, cand: Candidate) -> None:
        if cand.path is not None and cand.path.exists():
            self.ws.remove_worktree(cand.path)
            shutil.rmtree(cand.path, ignore_errors=True)
        cand.path = None

    def _remove_stale_worktrees(self) -> None:
        """Worktrees and in-flight logs a killed driver left behind: its trials simply run again."""
        with self._git:
            if self.wt_dir.exists():
                for path in self.wt_dir.iterdir():
                    self.ws.remove_worktree(path)
                    shutil.rmtree(path, ignore_errors=True)
            self.ws.git("worktree", "prune", check=False)
            for log in self.log_dir.glob(f"{self.ws.tag}-inflight-*") if self.log_dir.exists() else ():
                log.unlink(missing_ok=True)

    def _write_running(self) -> None:
        """running.json: the trials in flight (a list), plus the first one's fields at the top
        level for readers of the one-trial format."""
        study = self.study
        path = study.ledger.dir / "running.json"
        first_number = study._next_number()
        trials = []
        running = sorted(self._inflight.items(), key=lambda hc: hc[1].running_since)
        for i, (handle, cand) in enumerate(running):
            slot = getattr(handle, "slot", None)
            trials.append({"number": first_number + i, "seq": cand.seq, "description": cand.description,
                           "commit": cand.commit, "base": cand.base, "rebased": cand.rebased,
                           "since": cand.running_since, "worker": f"local-{slot}" if slot is not None else ""})
        if not trials:
            path.unlink(missing_ok=True)
            return
        info = dict(trials[0], pid=os.getpid(), budget=self.harness.budget, workers=self.workers,
                    executor=getattr(self.executor, "name", ""), trials=trials)
        text = json.dumps(info)
        if getattr(self, "_last_running", None) == text:
            return
        self._last_running = text
        study.ledger.dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)


def busy_fraction(trials: list[Trial], workers: int = 1) -> float:
    """Run seconds over the wall time from the baseline's end to the last trial's end, per slot."""
    base = next((t for t in trials if t.kind == "baseline"), None)
    rest = [t for t in trials if t.kind != "baseline"]
    if base is None or not rest:
        return 0.0
    wall = max(t.ended for t in rest) - base.ended
    return sum(t.seconds for t in rest) / (wall * workers) if wall > 0 else 0.0



def _fit(study, values) -> None:
    """The noise estimate from every recorded group of repeats plus this one."""
    groups = [t.values for t in study.trials if len(t.values) >= 2] + [list(values)]
    if hasattr(study.judge, "fit"):
        study.judge.fit(groups)
    else:
        study.judge.observe(values)
