"""Study: the loop, owned by code.

    ask the agent -> check the diff -> commit -> run (external limit) -> re-score -> judge
    -> record (fsync) -> keep (branch stays) or reset to the best -> repeat

First the baseline runs `baseline_runs` times so the judge knows the metric's noise. A crash,
a hang, a forged score, a bad edit: each becomes a recorded trial and the loop goes on. The
ledger row is written before git moves, and a study started again on the same tag
reconciles git with the ledger, so a kill at any instant loses at most the trial in flight.

    Study("runs/demo").optimize(max_trials=5)
"""

from __future__ import annotations

import json
import os
import statistics
import time


from autoresearch import agents as agents_mod
from autoresearch import knobs, runner, sandbox
from autoresearch.config import Config
from autoresearch.display import Quiet
from autoresearch.errors import AgentError, AutoresearchError, NotPreparedError, WorkspaceError
from autoresearch.harness import Harness
from autoresearch.judge import CONFIRM, KEEP, Judge, overfits
from autoresearch.ledger import Ledger, clean
from autoresearch.measurement import Measurement, harness_env, measure, score_holdout
from autoresearch.trial import Trial, TrialState
from autoresearch.workspace import Workspace, init  # noqa: F401  (API: autoresearch.init)

LOGS = ".autoresearch/logs"


def prepare(workspace, progress=None) -> None:
    """Run the harness' prepare command (data, tokenizer) in the workspace, streaming its output."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    harness = Harness.load(ws.root)
    if not harness.prepare:
        return
    import subprocess
    env = harness_env(harness)
    proc = subprocess.Popen(harness.command(harness.prepare), cwd=ws.root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if progress:
            progress(line.rstrip("\n"))
    if proc.wait() != 0:
        raise NotPreparedError(f"`{harness.prepare}` failed in {ws.root} (exit {proc.returncode}):\n"
                               + "".join(lines[-20:]))


class Study:
    def __init__(self, workspace, tag: str | None = None, agent=None, agent_options: dict | None = None,
                 config: Config | None = None, display=None, executor=None):
        self.ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace, tag=tag)
        if tag and self.ws.tag != tag:
            self.ws = Workspace(self.ws.root, tag=tag)
        self.harness = Harness.load(self.ws.root)
        self.config = config or Config.load(self.harness.section("study"))
        name = agent if isinstance(agent, str) else (self.config.agent if agent is None else None)
        if name is not None:
            options = dict(self.harness.section("agents").get(name, {}) or {})
            options.update(agent_options or {})
            self.agent = agents_mod.get_agent(name, **options)
            self.agent_name = name
        else:
            self.agent = agent
            self.agent_name = getattr(agent, "name", type(agent).__name__)
        self.display = display or Quiet()
        self.executor = executor
        from autoresearch import tracking        # MLflow etc.: after each ledger row, never in the loop's way
        self.tracker = tracking.for_study(self.ws, self.harness, report=self.display.message)
        self.ledger = Ledger(self.ws.root, self.ws.tag, self.harness.metric)
        self.judge = Judge(self.harness.direction, self.config.sigma, self.config.min_delta,
                           self.config.confirm_band, self.config.max_repeats, self.config.prior_sd)
        self.trials: list[Trial] = []
        self.best: Trial | None = None
        self.sandbox = None
        self._pins: dict = {}
        self._overhead: float | None = None
        self.stop_reason = ""
        self._readonly_sums: dict[str, str] = {}
        self._failures = 0

    # ------------------------------------------------------------------ resume
    def reconcile(self) -> None:
        """Make git agree with the ledger (the ledger is the truth) and load the history."""
        ws, ledger = self.ws, self.ledger
        resuming = bool(ledger.load()) or ledger.meta_path.exists()
        # refused before anything is created; files untracked now are the user's, left alone (a study killed
        # mid-trial adopts none: what appeared since is the trial's and is stashed below)
        ws.leave_alone(self.harness.required_files(), adopt_new=not (ledger.dir / "running.json").exists(),
                       refuse_changes=not resuming)
        if not ws.branch_exists():
            if ws.current_branch() in ("HEAD", "") or ledger.load():
                raise WorkspaceError(f"no branch {ws.branch}: run `autoresearch init {ws.root} --tag {ws.tag}`")
            ws.checkout(create=True)
        self._clean_up_after_kill()
        if ws.is_dirty():
            changed = ", ".join(ws.changed_files()[:5])
            # an edit in flight when the tool was killed: keep it in a stash, never lose it
            ws.stash(f"autoresearch: changes in flight when tag {ws.tag} stopped ({changed})")
        ws.checkout()
        ledger.open()
        meta = ledger.meta()
        fingerprint = self.harness.fingerprint()
        trials = ledger.load()
        if meta.get("fingerprint") and meta["fingerprint"] != fingerprint and trials:
            raise WorkspaceError(
                f"tag {ws.tag!r} holds results of another harness (read-only files, metric, budget, profile or "
                f"data differ from what it was run with): start a new tag with --tag, or restore the harness")
        if meta.get("fingerprint") != fingerprint:      # new tag, or nothing recorded under the old harness
            meta = {"fingerprint": fingerprint, "tag": ws.tag, "created": time.time(),
                    "readonly": ws.checksums(self.harness.readonly), "metric": self.harness.metric,
                    "direction": self.harness.direction, "profile": self.harness.profile}
            ledger.write_meta(meta)
        self._readonly_sums = meta.get("readonly") or ws.checksums(self.harness.readonly)
        self._pins, self._overhead = dict(meta.get("pins") or {}), meta.get("overhead")
        # a close call may have re-measured the best: those values belong to the best's trial
        by_number = {t.number: i for i, t in enumerate(trials)}
        for t in list(trials):
            for number, values in (t.extra.get("best_reruns") or {}).items():
                i = by_number.get(int(number))
                if i is not None:
                    grown = trials[i].values + tuple(values)
                    trials[i] = trials[i].replace(values=grown, value=statistics.fmean(grown))
        self.trials = trials
        self._fit_noise()
        kept = [t for t in trials if t.state == TrialState.KEEP]
        self.best = kept[-1] if kept else None
        if self.best is not None:
            if not ws.has_commit(self.best.commit):
                raise WorkspaceError(f"the best trial's commit {self.best.commit[:7]} is missing from git: "
                                     f"was the branch rewritten? Start a new tag with --tag")
            if ws.head() != self.best.commit:
                ws.reset_hard(self.best.commit)

    def _clean_up_after_kill(self) -> None:
        """A study killed with kill -9 may leave its run's process group and git's index lock."""
        path = self.ledger.dir / "running.json"
        try:
            info = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            info = None
        if info and not _alive(info.get("pid")):
            pgid = info.get("child_pgid")
            if pgid and _alive(pgid):
                runner.kill_group(int(pgid))
            path.unlink(missing_ok=True)
        elif info and info.get("pid") != os.getpid():
            raise WorkspaceError(f"another autoresearch process (pid {info.get('pid')}) is running a study on tag "
                                 f"{self.ws.tag} here: stop it first, or use another --tag")
        # locks left by a git command killed with the tool (git dies with it; no git runs here but ours)
        gitdir = self.ws.root / ".git"
        for lock in [*gitdir.glob("*.lock"), *(gitdir / "refs").rglob("*.lock")]:
            lock.unlink(missing_ok=True)

    # ------------------------------------------------------------------ the loop
    def begin(self, max_trials: int | None, hours: float | None, max_cost: float | None) -> tuple:
        """Before any loop (serial or parallel): the limits (arguments over config), the agent usable,
        git reconciled with the ledger, the data prepared."""
        cfg = self.config
        limits = (cfg.max_trials if max_trials is None else max_trials, cfg.hours if hours is None else hours,
                  cfg.max_cost if max_cost is None else max_cost)
        agents_mod.check(self.agent)
        if hasattr(self.agent, "check_harness"):     # e.g. the builtin agent's [search] names, before the baseline
            self.agent.check_harness(self.harness)
        self.sandbox = sandbox.detect(cfg.sandbox)
        os.environ["AUTORESEARCH_SANDBOX"] = cfg.sandbox      # the executors' workers use the same walls
        if not self.sandbox.enforced:
            self.display.message(f"warning: {self.sandbox.note}")
        sandbox.private()
        self.reconcile()
        self.tracker.resume(self.trials)         # log what an earlier session could not
        self._check_prepared()
        h = self.harness
        self.display.message(f"study on {self.ws.branch} in {self.ws.root} (agent {self.agent_name}, profile "
                             f"{h.profile or '-'}, budget {h.budget:g} s, {len(self.trials)} trials so far)")
        return limits

    def optimize(self, max_trials: int | None = None, hours: float | None = None,
                 max_cost: float | None = None) -> list[Trial]:
        cfg = self.config
        max_trials, hours, max_cost = self.begin(max_trials, hours, max_cost)
        start = time.monotonic()
        done = 0
        try:
            if self.best is None:
                self._baseline()
            while True:
                if max_trials is not None and done >= max_trials:
                    self.stop_reason = f"reached {max_trials} trials"
                    break
                if hours is not None and time.monotonic() - start >= hours * 3600:
                    self.stop_reason = f"reached {hours} hours"
                    break
                spent = sum(t.cost_usd for t in self.trials)
                if max_cost is not None and spent >= max_cost:
                    self.stop_reason = f"reached the cost limit (${spent:.2f} of ${max_cost:.2f})"
                    break
                self.step()
                done += 1
                if self._failures >= cfg.max_agent_failures:
                    self.stop_reason = (f"the agent failed {self._failures} times in a row; last: "
                                        f"{self.trials[-1].reason}")
                    raise AgentError(f"stopping: {self.stop_reason}")
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            self._restore_best()
        self.display.message(f"stopped: {self.stop_reason}")
        return self.trials

    def _check_prepared(self) -> None:
        """The harness' own check command says whether its data is there (exit 0) or not."""
        if not self.harness.check:
            return
        argv = self.harness.command(self.harness.check)
        import subprocess
        r = subprocess.run(argv, cwd=self.ws.root, env=harness_env(self.harness),
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise NotPreparedError(f"the data for profile {self.harness.profile or '?'} is not prepared: run "
                                   f"`autoresearch prepare` in {self.ws.root}\n{(r.stdout + r.stderr).strip()[-2000:]}")

    def _restore_best(self) -> None:
        try:
            if self.best is not None and self.best.commit:
                self.ws.reset_hard(self.best.commit)
        except AutoresearchError:
            pass
        self._running(None)

    def _baseline(self) -> None:
        ws = self.ws
        commit = ws.head()
        number = self._next_number()
        self.display.trial_started(0, "baseline", self.harness.budget)
        self._running({"number": number, "description": "baseline"})
        values, seconds, training, last, started = [], 0.0, 0.0, None, time.time()
        for i in range(self.config.baseline_runs):
            m = self._measure(number, i, commit)
            seconds += m.result.seconds
            training += float(m.result.metric("training_seconds") or 0.0)
            last = m
            if m.value is None:
                break
            values.append(m.value)
        self._running(None)
        if last.value is None:
            self._drop_models(number)
            trial = self._trial(number, last.state, "baseline", commit=commit, parent=commit, values=(),
                                m=last, seconds=seconds, training=training, kind="baseline", started=started,
                                reason=last.reason)
            self._record(trial)
            raise AutoresearchError(f"the baseline failed ({last.state.value}: {last.reason.splitlines()[0] if last.reason else ''}); "
                                    f"fix the harness, see the log {last.result.log_path}")
        self._fit_noise_with(values)
        self._pin_baseline(last, seconds - training, len(values))
        trial = self._trial(number, TrialState.KEEP, "baseline", commit=commit, parent=commit, values=tuple(values),
                            m=last, seconds=seconds, training=training, kind="baseline", started=started,
                            reason=self.judge.describe(len(values), values),
                            extra=self._holdout(number, len(values), every=True))
        self._drop_models(number)
        ws.pin(number, commit)
        self._record(trial)
        self.best = trial
        self._fit_noise()

    def _pin_baseline(self, m: Measurement, overhead: float, runs: int) -> None:
        """What later runs are held to: the data the evaluator read (its *_sha256 lines) and the wall
        seconds a run takes besides training (start-up, compile), from which the hard limit follows."""
        meta = self.ledger.meta()
        self._pins = dict(m.pins)
        self._overhead = max(0.0, overhead / max(1, runs))
        meta.update(pins=self._pins, overhead=self._overhead)
        self.ledger.write_meta(meta)

    def _limits(self) -> dict:
        from autoresearch.measurement import hard_limit
        return dict(sandbox=self.sandbox, pins=self._pins, timeout=hard_limit(self.harness, self._overhead))

    def _fit_noise(self) -> None:
        self.judge.fit(t.values for t in self.trials if len(t.values) >= 2)

    def _next_number(self) -> int:
        return (max(t.number for t in self.trials) + 1) if self.trials else 0

    def context(self, number: int) -> agents_mod.Context:
        h = self.harness
        files = {}
        for name in h.editable:
            p = self.ws.root / name
            files[name] = p.read_text(errors="replace") if p.exists() else ""
        program = (self.ws.root / h.program).read_text(errors="replace") if (self.ws.root / h.program).exists() else ""
        last_failure = ""
        for t in reversed(self.trials):
            if t.state == TrialState.KEEP:
                break
            if t.state in (TrialState.CRASH, TrialState.TIMEOUT):
                last_failure = t.extra.get("tail", "") or t.reason
                break
        # the hidden holdout score never reaches an agent
        hide = {t.number: t.replace(extra={k: v for k, v in t.extra.items() if k not in ("holdout", "holdout_sd")}) for t in self.trials}
        return agents_mod.Context(root=self.ws.root, program=program, files=files, editable=h.editable,
                                  readonly=h.readonly, history=tuple(hide.values()),
                                  best=hide.get(self.best.number) if self.best else None,
                                  last_failure=last_failure, metric=h.metric, direction=h.direction,
                                  noise_sd=self.judge.sd, trial_number=number, seed=self.config.seed,
                                  search=dict(h.search))

    def step(self) -> Trial:
        """One trial: propose, check, commit, measure (and confirm), judge, record, keep or reset."""
        ws, h = self.ws, self.harness
        number = self._next_number()
        parent = self.best.commit
        started = time.time()
        self._running({"number": number, "description": "(agent is proposing)"})
        t0 = time.monotonic()
        guard = ws.guard()
        try:
            proposal = self.agent.propose(self.context(number))
        except KeyboardInterrupt:
            raise
        except Exception as e:  # an agent's crash or timeout is a trial, not the end of the study
            kind = "agent failed" if isinstance(e, AgentError) else f"agent crashed ({type(e).__name__})"
            return self._discard_unrun(number, parent, TrialState.INVALID, f"{kind}: {e}", f"{kind}: {e}",
                                       started, agent_seconds=time.monotonic() - t0)
        agent_seconds = time.monotonic() - t0
        tampered = ws.tampered(guard)
        if tampered:             # (an INVALID trial counts as the agent's failure: _discard_unrun)
            return self._discard_unrun(number, parent, TrialState.INVALID, clean(proposal.description or "", 300),
                                       f"the agent changed git's own files ({', '.join(tampered[:5])}): restored",
                                       started, agent_seconds=agent_seconds)
        description = clean(proposal.description or "", 300) or "(no description)"
        cost = self._cost(proposal)
        common = dict(agent_seconds=agent_seconds, cost=cost, proposal=proposal)
        if proposal.invalid:
            return self._discard_unrun(number, parent, TrialState.INVALID, description,
                                       f"no usable change: {proposal.invalid}", started, **common)
        changed = ws.changed_files()
        if not changed:
            return self._discard_unrun(number, parent, TrialState.INVALID, description,
                                       "no change: the agent left the files as they were", started, **common)
        outside = [f for f in changed if f not in h.editable]
        if outside:
            return self._discard_unrun(number, parent, TrialState.INVALID, description,
                                       f"touched files outside the editable ones: {', '.join(outside[:10])}",
                                       started, **common)
        missing = [f for f in h.editable if not (ws.root / f).exists()]
        if missing:
            return self._discard_unrun(number, parent, TrialState.INVALID, description,
                                       f"deleted an editable file: {', '.join(missing)}", started, **common)
        odd = [f for f in h.editable if not (ws.root / f).is_file() or (ws.root / f).is_symlink()]
        if odd:
            return self._discard_unrun(number, parent, TrialState.INVALID, description,
                                       f"not a regular file any more: {', '.join(odd)}", started, **common)
        code_hash = ws.code_hash(h.editable)
        twin = next((t for t in self.trials if t.code_hash == code_hash and t.commit), None)
        if twin is not None:
            state = TrialState.DISCARD if twin.state in (TrialState.KEEP, TrialState.DISCARD) else twin.state
            return self._discard_unrun(number, parent, state, description,
                                       f"same code as trial {twin.number}: not run again", started,
                                       value=twin.value, **common)
        self._failures = 0           # a usable change; an INVALID proposal counts as the agent's failure
        commit = ws.commit(f"trial {number}: {description}")
        ws.pin(number, commit)
        self.display.trial_started(number, description, h.budget)
        self._running({"number": number, "description": description, "commit": commit})
        values, seconds, training, m = [], 0.0, 0.0, None
        decision, best_new = None, []
        while True:
            m = self._measure(number, len(values), commit)
            seconds += m.result.seconds
            training += float(m.result.metric("training_seconds") or 0.0)
            if m.value is None:
                break
            values.append(m.value)
            if len(values) >= 2 or best_new:
                self._fit_noise_with(values)        # every repeat sharpens the noise estimate
            decision = self.judge.decide(values, list(self.best.values) or [self.best.value])
            if decision.verdict != CONFIRM:
                break
            self.display.message(f"  close call ({decision.explain()}): measuring again")
            if self.config.rerun_best and len(self.best.values) < 2 * self.config.max_repeats:
                b = self._measure_best(number, len(best_new))
                seconds += b.result.seconds
                training += float(b.result.metric("training_seconds") or 0.0)
                if b.value is not None:
                    best_new.append(b.value)
                    self._grow_best(best_new[-1:])
        extra = {"best_reruns": {str(self.best.number): best_new}} if best_new else {}
        if len(values) >= 2 or best_new:
            self._fit_noise_with(values)
        if m.value is None:
            state, reason = m.state, m.reason
        else:
            state = TrialState.KEEP if decision.verdict == KEEP else TrialState.DISCARD
            reason = decision.explain()
        if state == TrialState.KEEP:
            extra.update(self._holdout(number, len(values)))
            if self._overfits(extra.get("holdout")):
                state, reason = TrialState.DISCARD, (f"{reason}; discarded: the gain does not hold on held-out data "
                                                     f"(it overfits the validation split)")
        self._drop_models(number)
        trial = self._trial(number, state, description, commit=commit, parent=parent, values=tuple(values), m=m,
                            seconds=seconds, training=training, started=started, reason=reason,
                            margin=decision.margin if decision and m.value is not None else None,
                            code_hash=code_hash, extra=extra, **common)
        self._record(trial)          # fsynced before git moves
        if state == TrialState.KEEP:
            self.best = trial        # the branch is already at commit
        else:
            ws.reset_hard(parent)
        self._running(None)
        return trial

    def _model_path(self, number: int, repeat: int):
        return self.ws.root / ".autoresearch" / "models" / f"{self.ws.tag}-{number}.{repeat}.pt"

    def _holdout(self, number: int, repeats: int, every: bool = False) -> dict:
        """Score the kept model of the last repeat (every: of each repeat, the baseline, whose spread is
        the holdout's noise) on the split the agent never hears of."""
        if not (self.harness.holdout and repeats):
            return {}
        values = []
        for i in range(repeats) if every else [repeats - 1]:
            v = score_holdout(self.ws.root, self.harness, self._model_path(number, i),
                              self.ws.root / LOGS / f"{self.ws.tag}-{number}{f'.{i}' if i else ''}.holdout.log",
                              self.config.memory_limit(), self.sandbox)
            if v is not None:
                values.append(v)
        if not values:
            return {}
        out = {"holdout": statistics.fmean(values)}
        if len(values) >= 2:
            out["holdout_sd"] = statistics.stdev(values)
        return out

    def _overfits(self, holdout: float | None) -> bool:
        """The candidate's holdout is worse than the best's beyond the baseline's holdout noise."""
        base = next((t for t in self.trials if t.kind == "baseline"), None)
        best = self.best.extra.get("holdout") if self.best else None
        if holdout is None or best is None or base is None or "holdout_sd" not in base.extra:
            return False
        return overfits(holdout, best, base.extra["holdout_sd"], self.harness.direction, self.config.sigma)

    def _drop_models(self, number: int) -> None:
        """Models are large and the commit reproduces one: delete this trial's."""
        for path in (self.ws.root / ".autoresearch" / "models").glob(f"{self.ws.tag}-{number}.*"):
            path.unlink(missing_ok=True)

    def _grow_best(self, values) -> None:
        """New measurements of the best's code: its mean sharpens (recorded with the candidate)."""
        values = self.best.values + tuple(values)
        grown = self.best.replace(values=values, value=statistics.fmean(values))
        self.trials = [grown if t is self.best else t for t in self.trials]
        self.best = grown

    def _fit_noise_with(self, values) -> None:
        self.judge.fit([*(t.values for t in self.trials if len(t.values) >= 2), values])

    def _measure_best(self, number: int, repeat: int) -> Measurement:
        """Run the best commit again in a worktree beside the workspace (the candidate stays checked out)."""
        root = self.ws.root
        tree = root / ".autoresearch" / "worktrees" / "best"
        self.ws.remove_worktree(tree)
        self.ws.add_worktree(tree, self.best.commit)
        try:
            name = f"{self.ws.tag}-{number}.best{repeat}"
            return measure(tree, self.harness, self._readonly_sums, root / LOGS / f"{name}.log",
                           root / ".autoresearch" / "models" / f"{name}.pt", self.config.memory_limit(),
                           self.config.rescore, self.display.progress, number, on_start=self._child_started,
                           **self._limits())
        finally:
            self.ws.remove_worktree(tree)

    def _discard_unrun(self, number, parent, state, description, reason, started, value=None,
                       agent_seconds=0.0, cost=0.0, proposal=None) -> Trial:
        trial = self._trial(number, state, description, commit="", parent=parent, values=(), m=None,
                            started=started, reason=reason, agent_seconds=agent_seconds, cost=cost,
                            proposal=proposal, value=value)
        self._record(trial)
        if state == TrialState.INVALID:
            self._failures += 1
        self.ws.reset_hard(parent)
        self._running(None)
        return trial

    # ------------------------------------------------------------------ measuring
    def _measure(self, number: int, repeat: int, commit: str) -> Measurement:
        """Run the harness once in the workspace; a run that writes to the ledger is INVALID."""
        suffix = f".{repeat}" if repeat else ""
        root = self.ws.root
        before, guard = self._ledger_state(), self.ws.guard()
        m = measure(root, self.harness, self._readonly_sums, root / LOGS / f"{self.ws.tag}-{number}{suffix}.log",
                    self._model_path(number, repeat), self.config.memory_limit(), self.config.rescore,
                    self.display.progress, number, on_start=self._child_started, keep_model=True,
                    **self._limits())
        tampered = self.ws.tampered(guard)
        if tampered:
            return Measurement(TrialState.INVALID, None, m.result, f"the run changed git's own files "
                                                                  f"({', '.join(tampered[:5])}): restored")
        self.ws.drop_run_outputs()       # what the run wrote is not the agent's edit
        if self._ledger_state() != before:
            self._repair_ledger()
            return Measurement(TrialState.INVALID, None, m.result,
                               "the run wrote to the ledger (results.tsv or trials.jsonl); restored")
        return m

    def _ledger_state(self):
        return self.ledger.digest()

    def _repair_ledger(self) -> None:
        """Rewrite the ledger from memory: what a run wrote there never counts."""
        for path, text in ((self.ledger.jsonl, "".join(json.dumps(t.to_dict(), sort_keys=True) + "\n" for t in self.trials)),):
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
        self.ledger.write_meta(self.ledger.meta() if self.ledger.meta().get("fingerprint") else {})
        if self.ledger.tsv.exists():
            self.ledger.tsv.unlink()
        self.ledger.open()

    # ------------------------------------------------------------------ recording
    def _cost(self, proposal) -> float:
        if proposal.cost_usd:
            return float(proposal.cost_usd)
        model = (proposal.extra or {}).get("model")
        price = self.harness.section("prices").get(model) if model else None
        if isinstance(price, (list, tuple)) and len(price) == 2:
            return (proposal.tokens_in * price[0] + proposal.tokens_out * price[1]) / 1e6
        return 0.0

    def _trial(self, number, state, description, commit, parent, values, m, started, reason="", seconds=0.0,
               training=0.0, kind="trial", margin=None, code_hash="", agent_seconds=0.0, cost=0.0,
               proposal=None, value=None, extra=None) -> Trial:
        metrics = dict(m.result.summary) if m is not None and m.value is not None else {}
        extra = dict(extra or {})
        if m is not None and m.value is None:
            extra["tail"] = m.result.tail[-4000:]
        if values and m is not None:
            metrics[self.harness.metric] = statistics.fmean(values)
        try:
            source = "\n".join((self.ws.root / f).read_text() for f in self.harness.editable if f.endswith(".py")
                               and (self.ws.root / f).exists())
            extra["knobs"] = {k: v.value for k, v in knobs.find(source).items()}
        except (SyntaxError, ValueError, OSError):
            pass
        if proposal is not None and proposal.extra:
            extra["agent"] = {k: v for k, v in proposal.extra.items() if _jsonable(v)}
        log = ""
        if m is not None and m.result.log_path:
            log = os.path.relpath(m.result.log_path, self.ws.root)
        return Trial(number=number, state=state, description=description, commit=commit, parent=parent,
                     value=statistics.fmean(values) if values else value, values=tuple(values), metrics=metrics,
                     seconds=seconds, training_seconds=training, reason=reason, margin=margin,
                     code_hash=code_hash or (self.ws.code_hash(self.harness.editable) if commit else ""),
                     kind=kind, agent=self.agent_name, profile=self.harness.profile, tag=self.ws.tag,
                     cost_usd=cost, tokens_in=getattr(proposal, "tokens_in", 0) or 0,
                     tokens_out=getattr(proposal, "tokens_out", 0) or 0, agent_seconds=agent_seconds, log=log,
                     started=started, ended=time.time(), extra=extra)

    def _record(self, trial: Trial) -> None:
        self.ledger.append(trial)
        self.tracker.after_record(trial)
        self.trials.append(trial)
        self.display.trial_done(trial, self.best if trial.state != TrialState.KEEP else trial)

    def _child_started(self, pgid: int) -> None:
        path = self.ledger.dir / "running.json"
        try:
            info = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            info = {}
        self._running(dict(info, child_pgid=pgid), keep_since=True)

    def _running(self, info: dict | None, keep_since: bool = False) -> None:
        """What `autoresearch status` shows as running now (and what a resume must clean up)."""
        path = self.ledger.dir / "running.json"
        if info is None:
            path.unlink(missing_ok=True)
            return
        info = dict(info, pid=os.getpid(), budget=self.harness.budget)
        if not keep_since or "since" not in info:
            info["since"] = time.time()
        self.ledger.dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, path)


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (ProcessLookupError, ValueError, TypeError, OverflowError):
        return False
    except PermissionError:
        return True


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def load_trials(workspace, tag: str | None = None) -> tuple[Workspace, Harness, list[Trial]]:
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace, tag=tag)
    harness = Harness.load(ws.root)
    return ws, harness, Ledger(ws.root, ws.tag, harness.metric).load()
