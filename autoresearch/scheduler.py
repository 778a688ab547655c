"""Scheduler: the one loop of a study, N slots over an Executor (N = 1 by default).

    propose (a thread, one agent call at a time, on the best or a tree node, in its own worktree) -> check -> commit
    -> run on a free slot -> judge (close call: again, the best beside it) -> Study.tell -> keep: the branch moves

- A trial's number is given when it is proposed: its logs (<tag>-<n>.log, .1.log, ...), models,
  AUTORESEARCH_TRIAL and seeds (measurement.seed_offset) are final from the start.
- Pipelining (by default with several slots; `pipeline` in [study]): one proposal more than there
  are slots is prepared while runs go, so a slow agent hides behind the runs; a waiting proposal
  that conflicts with a run in flight (`git merge-tree`) would be lost if that run is kept, so
  one more is prepared for it. Without it, each proposal sees the result of the one before.
- One rule keeps the branch honest: a candidate is kept only if it was measured on the best as
  it is when the verdict comes. A proposal whose base is no longer the best is cherry-picked onto
  the best before it runs; one measured on a base that stopped being the best is judged against
  its own base, and if it looks better it is re-based and run again before it can be kept. A
  conflict (or a change already in the best) is a DISCARD with that reason.
- The ledger row is fsynced before the branch moves; a run that wrote to the ledger is INVALID (the
  ledger is restored from memory); the holdout is scored for kept trials only. Ctrl-C cancels the
  runs in flight and records nothing half-done; a killed driver's leftovers are cleaned up next start.
    Scheduler(study, LocalExecutor(4)).optimize(max_trials=20)     # = study.optimize(...)
"""

from __future__ import annotations

import collections
import threading
import time

from autoresearch import runner, running, tree
from autoresearch.candidate import Candidate
from autoresearch.errors import AgentError, AutoresearchError
from autoresearch.executors.base import Executor, Job, Setup
from autoresearch.judge import CONFIRM, DISCARD, KEEP
from autoresearch.limits import since_keep  # h13: --stall
from autoresearch.measurement import Measurement, holdout_stats, seed_offset
from autoresearch.proposer import Proposer
from autoresearch.trial import TrialState
from autoresearch.worktrees import Worktrees

POLL = 0.05          # seconds between looks at the executor and the proposal queue


class Scheduler:
    def __init__(self, study, executor: Executor, workers: int | None = None, pipeline: bool | None = None):
        self.study, self.ws, self.harness, self.executor = study, study.ws, study.harness, executor
        self.workers = max(1, workers or executor.slots)
        self.trees = Worktrees(self.ws)
        pipeline = study.config.pipeline if pipeline is None else pipeline
        self.proposer = Proposer(self, self.workers > 1 if pipeline is None else pipeline)
        self.log_dir = self.ws.root / ".autoresearch" / "logs"
        self.model_dir = self.ws.root / ".autoresearch" / "models"
        self.cv = threading.Condition()
        self.inflight: dict = {}                  # executor handle -> (Candidate, "run" | "best", Job)
        self.queue: collections.deque = collections.deque()   # (Candidate, kind): re-runs waiting for a slot
        self.draining, self.recorded = False, 0
        self.budget: int | None = None            # max_trials of this invocation
        self._move_to = ""                        # a kept commit the branch has not moved to yet
        self._trash: list[Candidate] = []         # recorded: worktrees removed off the critical path
        self._pgids: dict[str, int] = {}          # job key -> the run's process group (inline executor)
        self._running_text = ""
        self._warned = ""

    # ------------------------------------------------------------------ the loop
    def optimize(self, max_trials: int | None = None, hours: float | None = None,
                 max_cost: float | None = None):
        study = self.study
        limits = study.limits(max_trials, hours, max_cost)
        study.resume()
        self.trees.remove_all()
        self._drop_models()                      # a killed driver's
        if hasattr(self.executor, "on_start"):       # an executor that sees its runs: live line, running.json
            self.executor.on_start = lambda job, pgid: self._pgids.__setitem__(job.key, pgid)
            self.executor.on_progress = lambda job, progress: study.display.progress(progress)
        self.executor.start(Setup(self.harness, dict(study.readonly_sums), study.config.memory_limit_mb,
                                  study.config.rescore, self.ws.tag, holdout=not self.executor.local_models))
        self.budget = limits.max_trials
        head = self.ws.head()
        try:
            baseline = None if study.best is not None else Candidate(
                number=study.new_number(), base=head, kind="baseline", commit=head, description="baseline",
                wanted=study.config.baseline_runs)
            self.proposer.start(head)        # proposals start at once, during a baseline on its commit
            if baseline is not None:
                self._baseline(baseline)
            while True:
                self.proposer.raise_error()
                if not self.draining:
                    reason = limits.reason(self.recorded, sum(t.cost_usd for t in study.trials), study.failures,
                                           since_keep=since_keep(study.trials))     # h13: --stall
                    if reason:
                        self.drain(reason)
                self._take_ready()
                self._move_branch()
                self._empty_trash()
                if self.draining and not self.inflight and not self.queue and self.proposer.idle():
                    break
                self._step()
        except KeyboardInterrupt:
            study.stop_reason = "interrupted"
        finally:
            self._shutdown()
        study.display.message(f"stopped: {study.stop_reason}")
        if study.stop_reason.startswith("the agent failed"):
            raise AgentError(f"stopping: {study.stop_reason}")
        return study.trials

    def _step(self) -> None:
        """Wait a little for a run to finish (or a proposal to arrive); handle what finished."""
        handles = list(self.inflight)
        if handles:
            for handle in self.executor.wait(handles, POLL):
                self._finished(handle)
        else:
            with self.cv:
                self.cv.wait(POLL)
        self._write_running()

    def drain(self, reason: str) -> None:
        """No new proposals or runs; what is in flight finishes and is recorded."""
        if not self.draining:
            last = self.study.trials[-1].reason if self.study.trials else ""
            self.study.stop_reason = reason + (f"; last: {last}" if reason.startswith("the agent failed") else "")
        self.draining = True
        with self.cv:
            self.cv.notify_all()

    def free(self) -> bool:
        return len(self.inflight) < self.workers

    def _shutdown(self) -> None:
        """Cancel what still runs, remove every worktree, put the main tree on the best."""
        self.draining = True
        self.proposer.stop()
        for handle in list(self.inflight):
            self.executor.cancel(handle)
        try:
            self.executor.close()
        finally:
            self.inflight.clear()
            self.proposer.join()
            with self.trees.lock:
                self._move_to = ""               # restore_best below puts the branch on the best
                for cand in self.proposer.take_all() + self._trash:
                    self.trees.remove(cand.path)
                self._trash.clear()
                self.trees.remove_all()
                self._drop_models()
                self.study.restore_best()        # also clears running.json

    # ------------------------------------------------------------------ baseline
    def _baseline(self, cand: Candidate) -> None:
        """The baseline's repeats run side by side (up to the slots), each in its own worktree; a run that other
        load starved (the quiet rest say so: LoadCheck.outliers) is measured again, as a trial's is (h13)."""
        study, _ = self.study, self.proposer.fingerprint(cand, self.ws.root)      # its knobs, as committed
        study.display.message(f"[baseline] {cand.wanted} run(s) on {min(cand.wanted, self.workers)} slot(s)")
        for again in range(study.load.reruns + 1):
            while (cand.wanted and cand.failed is None) or cand.pending:
                while cand.wanted and cand.failed is None and self.free():
                    cand.wanted -= 1
                    self._submit(cand, "run")
                self._step()
                if cand.failed is not None:          # a failing baseline fails every time: stop early
                    for handle in [h for h, (c, _, _) in self.inflight.items() if c is cand]:
                        self.executor.cancel(handle)
            starved = {} if cand.failed is not None or again == study.load.reruns else study.load.outliers(cand.runs)
            if not starved:
                break
            why = next(iter(starved.values()))
            study.display.message(f"  baseline run(s) {', '.join(str(i + 1) for i in starved)} disturbed ({why}): "
                                  f"measuring again")
            cand.wanted = cand.drop(starved, why)
        if cand.failed is not None:
            self._record(cand, cand.failed.state, cand.failed.reason)
            why = cand.failed.reason.splitlines()[0] if cand.failed.reason else ""
            raise AutoresearchError(f"the baseline failed ({cand.failed.state.value}: {why}); fix the harness, "
                                    f"see the log {cand.failed.result.log_path}")
        study.fit_noise(cand.values)
        wall, training = cand.seconds()
        study.pin_baseline(cand.runs[-1], wall - training, len(cand.values))
        self._record(cand, TrialState.KEEP, study.judge.describe(len(cand.values), cand.values))

    # ------------------------------------------------------------------ starting runs
    def _take_ready(self) -> None:
        """Start re-runs, then proposals, while slots are free; record proposals that never run."""
        while self.queue and self.free():
            cand, kind = self.queue.popleft()
            cand.pending -= 1                  # _submit counts it again
            self._submit(cand, kind)
        while True:
            cand = self.proposer.next_ready(full=not self.free() or bool(self.queue))
            if cand is None:
                return
            if cand.unrun is None and cand.base != self.study.best.commit and cand.improves is None:
                self._rebase(cand)
            if cand.unrun is None:
                self._twin(cand)
            if cand.unrun is not None:
                self._record(cand, *cand.unrun)
                continue
            self._submit(cand, "run")

    def _twin(self, cand: Candidate) -> None:
        twin = self.study.twin(cand.code_hash)
        if twin is not None:
            state, reason, cand.twin_value = twin
            cand.unrun, cand.commit = (state, reason), ""
            return
        other = next((c for c, _, _ in self.inflight.values() if c.code_hash == cand.code_hash), None)
        if other is not None:
            cand.unrun, cand.commit = (TrialState.DISCARD, f"same code as trial {other.number}, in flight: "
                                                           f"not run twice"), ""

    def _submit(self, cand: Candidate, kind: str) -> None:
        """Start one run of the candidate (kind "run") or of the best it is judged against ("best")."""
        tag, best = self.ws.tag, kind == "best"
        stem = cand.run_name(tag, best=best)
        if best:      # offset: no two runs of a study share a seed (measurement.seed_offset)
            cand.best_submitted += 1
            commit = self.study.best.commit
            root = self.trees.add(f"{stem}", commit)
            offset = seed_offset(self.study.best.number,
                                 len(self.study.best.values) + (cand.best_submitted - 1 - len(cand.best_runs)))
        else:
            cand.submitted += 1
            commit = cand.commit
            root = cand.path if cand.kind != "baseline" else self.trees.add(stem, commit)   # repeats side by side
            offset = seed_offset(cand.number, cand.submitted - 1)
        job = Job(key=stem, root=root, commit=commit, log=self.log_dir / f"{stem}.log", model=self.model_dir / f"{stem}.pt",
                  trial=cand.number, seeds=cand.kind == "baseline", seed_offset=offset,
                  keep_model=self.executor.local_models and not best, **self.study.run_limits(cand, kind))
        cand.running_since = time.time()
        cand.pending += 1
        self.inflight[self.executor.submit(job)] = (cand, kind, job)
        label = " (a re-run of the best beside it)" if best else (" (re-based)" if cand.rebased else "")
        self.study.display.trial_started(cand.number, cand.description + label)

    # ------------------------------------------------------------------ a run finished
    def _finished(self, handle) -> None:
        study = self.study
        cand, kind, job = self.inflight.pop(handle)
        cand.pending -= 1
        self._pgids.pop(job.key, None)
        out = self.executor.result(handle)
        if job.root != cand.path:
            self.trees.remove(job.root)
        if out.cancelled or out.measurement.value is None or kind == "best":
            job.model.unlink(missing_ok=True)
        if out.cancelled:
            return
        m = out.measurement
        why = study.tampered()                    # a run wrote to the ledger or .git: restored, never counted
        if why:
            m = Measurement(TrialState.INVALID, None, m.result, why)
        if kind == "best":
            cand.best_runs.append(m)
            if m.value is not None:
                cand.best_values.append(m.value)
                study.grow(cand.best_number, [m.value])
        else:
            # h13: a run that other load starved of CPU is measured again, not judged (autoresearch/disturbance.py)
            if cand.kind == "baseline":
                study.load.learn(m)
            else:
                why = study.load.disturbed(m)
                if why:
                    times = cand.note_disturbed(why)
                    if times <= study.load.reruns:
                        study.display.message(f"  run disturbed ({why}): measuring again")
                        job.model.unlink(missing_ok=True)
                        self._again(cand, "run")
                        return
                    study.display.message(f"  disturbed in {times} runs, judged anyway: {why}")
            cand.runs.append(m)
            cand.worker, cand.node = out.worker, out.node
            if m.value is None:
                cand.failed = cand.failed or m
            else:
                cand.values.append(m.value)
                cand.holdout = m.holdout
                if cand.kind == "baseline":
                    cand.models.append(job.model)          # the holdout of each: its spread is the holdout's noise
                elif cand.model is not None and cand.model != job.model:
                    cand.model.unlink(missing_ok=True)       # only the last run's model is scored
                cand.model = job.model
        if cand.pending or cand.kind == "baseline":
            return                               # its other run is still going; the baseline decides itself
        self._judge(cand)

    def _judge(self, cand: Candidate) -> None:
        study = self.study
        if cand.failed is not None:
            self._record(cand, cand.failed.state, cand.failed.reason)
            return
        base, against = tree.judged_against(study, cand)     # a tree node's child: the best
        if len(cand.values) >= 2 or cand.best_values:
            study.fit_noise(cand.values)          # every repeat sharpens the noise estimate
        decision = study.decide(cand.values, base)
        stale = cand.base != study.best.commit
        if stale and decision.verdict != DISCARD:
            self._rebase(cand, measured=True)
            if cand.unrun is None:
                self._twin(cand)
            if cand.unrun is not None:
                self._record(cand, *cand.unrun)
            else:
                self._again(cand, "run")
            return
        if decision.verdict == CONFIRM:
            study.display.message(f"  close call ({decision.explain()}): measuring again")
            self._again(cand, "run")
            cfg = study.config
            if cfg.rerun_best and base is study.best and len(base.values) < 2 * cfg.max_repeats:
                cand.best_number = base.number
                self._again(cand, "best")
            return
        reason = decision.explain() if not stale else f"vs {against} trial {base.number}: {decision.explain()}"
        state = TrialState.KEEP if decision.verdict == KEEP else TrialState.DISCARD
        self._record(cand, state, reason, margin=decision.margin)

    def _again(self, cand: Candidate, kind: str) -> None:
        """Another run of it (or of the best beside it), ahead of new proposals, when a slot is free."""
        cand.pending += 1
        self.queue.append((cand, kind))

    def _rebase(self, cand: Candidate, measured: bool = False) -> None:
        """Cherry-pick the candidate onto the best, in its worktree; a conflict is a DISCARD."""
        best = self.study.best
        cand.stale.append({"base": cand.base, "commit": cand.commit, "values": list(cand.values)})
        picked, why = self.trees.rebase(cand.path, cand.commit, best.commit)
        cand.base, cand.rebased, cand.values = best.commit, True, []
        if not picked:
            why = (f"its change is already in the best (trial {best.number})" if why == "empty"
                   else f"re-basing onto trial {best.number} [{best.commit[:7]}] {why}")
            cand.unrun, cand.commit = (TrialState.DISCARD, why), ""
            return
        cand.commit = picked
        self.proposer.fingerprint(cand)
        if measured:
            self.study.display.message(f"[trial {cand.number}] measured on an old best: re-based onto trial "
                                       f"{best.number}")

    # ------------------------------------------------------------------ recording
    def _record(self, cand: Candidate, state: TrialState, reason: str, margin: float | None = None) -> None:
        study = self.study
        cand.state, cand.reason, cand.margin = state, reason, margin
        if state == TrialState.KEEP and self.executor.local_models:
            cand.holdout, cand.holdout_sd = self._holdout(cand)
        if state == TrialState.KEEP and cand.kind != "baseline" and study.overfits(cand.holdout):
            state = cand.state = TrialState.DISCARD
            cand.reason = f"{reason}; discarded: the gain does not hold on held-out data (it overfits the validation split)"
        for model in {*cand.models, cand.model} - {None}:
            model.unlink(missing_ok=True)
        trial = study.tell(cand)                  # fsynced before git moves
        if state == TrialState.KEEP and cand.kind != "baseline":
            self._move_to = trial.commit         # the branch moves right after the next run starts
        self._trash.append(cand)
        if cand.kind != "baseline":
            self.recorded += 1
            self.proposer.done(cand)
        if study.noise_warning != self._warned:          # said once, when it appears or changes
            self._warned = study.noise_warning
            if self._warned:
                study.display.warn(self._warned)

    def _holdout(self, cand: Candidate) -> tuple[float | None, float | None]:
        """(mean, sd) of the holdout scores of its kept model (the baseline: of every repeat's)."""
        models = cand.models if cand.kind == "baseline" else [cand.model]
        if not (self.harness.holdout and cand.values and all(models)):
            return None, None
        stem = cand.tag_stem(self.ws.tag)
        logs = [self.log_dir / f"{stem}{f'.{i}' if i else ''}.holdout.log" for i in range(len(models))]
        return holdout_stats(self.ws.root, self.harness, models, logs, self.study.sandbox,
                             self.study.config.memory_limit_mb or runner.default_memory_limit_mb())

    def _drop_models(self) -> None:
        """Models are large and a commit reproduces one: none outlives the runs of this study."""
        for path in self.model_dir.glob(f"{self.ws.tag}-*.pt"):
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ the branch, worktrees, status
    def _move_branch(self) -> None:
        """Keep = move the branch to the kept commit (its parent is the best before it) and the
        main worktree with it. Always after the ledger row; deferred past the next submit."""
        if self._move_to:
            with self.trees.lock:
                self.ws.reset_hard(self._move_to)
            self._move_to = ""

    def _empty_trash(self) -> None:
        while self._trash:
            self.trees.remove(self._trash.pop().path)

    def _write_running(self) -> None:
        """running.json: the trials in flight (see running.py for the format)."""
        runs = [(cand.number, cand.description + (" (re-run of the best)" if kind == "best" else ""), job.commit,
                 cand.base, cand.rebased, cand.running_since, getattr(handle, "slot", None), self._pgids.get(job.key))
                for handle, (cand, kind, job) in self.inflight.items()]
        text = running.update(self.study.ledger.dir, runs, self.proposer.proposing, self._running_text,
                              budget=self.harness.budget, workers=self.workers, executor=self.executor.name)
        self._running_text = text
