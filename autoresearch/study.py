"""Study: the state and the rules of one study; the loop that drives it is `scheduler.py`.

    baseline x k (measures noise) -> [ propose -> check -> commit -> run -> judge -> tell
    (ledger row, fsync) -> keep (branch moves) or not ] -> repeat until a limit

The Study knows the workspace, the harness, the agent, the ledger and the judge, and answers
the loop through a small interface: `resume()` (git reconciled with the ledger, data
prepared), `limits()`, `new_number()`, `context()` for the agent, `check()` a proposal,
`twin()`, `decide()`, `tell()` a finished candidate -> the recorded Trial (the one place a
ledger row is written), `grow()` the best's record with re-runs, and the ledger's tamper check.
A failed experiment is a recorded trial; a broken tool is an AutoresearchError.

    Study("runs/demo").optimize(max_trials=5)                     # one slot
    Study("runs/demo", config=Config(workers=4)).optimize()       # four trials in flight
"""

from __future__ import annotations

import json
import os
import statistics
import time

from autoresearch import agents as agents_mod
from autoresearch import noise, preparation, pruning, running, sandbox
from autoresearch.config import Config
from autoresearch.display import Quiet
from autoresearch.disturbance import LoadCheck
from autoresearch.errors import AutoresearchError, WorkspaceError
from autoresearch.harness import Harness
from autoresearch.judge import Judge, overfits
from autoresearch.limits import Limits
from autoresearch.ledger import Ledger, clean
from autoresearch.preparation import prepare  # noqa: F401  (API: autoresearch.prepare)
from autoresearch.trial import Trial, TrialState
from autoresearch.workspace import Workspace, init  # noqa: F401  (API: autoresearch.init)


class Study:
    def __init__(self, workspace, tag: str | None = None, agent=None, agent_options: dict | None = None,
                 config: Config | None = None, display=None):
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
        from autoresearch import tracking        # MLflow etc.: after each ledger row, never in the loop's way
        self.tracker = tracking.for_study(self.ws, self.harness, report=self.display.message)
        self.ledger = Ledger(self.ws.root, self.ws.tag, self.harness.metric)
        self.judge = Judge.from_config(self.config, self.harness.direction)
        self.trials: list[Trial] = []
        self.best: Trial | None = None
        self.stop_reason = ""
        self.load = LoadCheck(self.config.disturbed_below, self.config.disturbed_reruns)   # h13: disturbed runs
        self.failures = 0                    # agent failures in a row
        self.readonly_sums: dict[str, str] = {}
        self._given: set[int] = set()        # trial numbers given out by this process
        self._ledger_seen: str | None = None
        self._git_seen: dict | None = None
        self._meta: dict = {}
        self.sandbox = None
        self.pins: dict = {}                 # `*_sha256` values the baseline's score printed: runs must repeat them
        self.overhead: float | None = None   # wall seconds a run takes besides training (from the baseline)

    # ------------------------------------------------------------------ the loop
    def optimize(self, max_trials: int | None = None, hours: float | None = None, max_cost: float | None = None,
                 executor=None) -> list[Trial]:
        """Run the study until a limit: config.workers trials in flight on the configured executor
        (or the one given). Limits given here override the config's."""
        from autoresearch.executors import get_executor
        from autoresearch.scheduler import Scheduler
        return Scheduler(self, executor or get_executor(self.config)).optimize(max_trials, hours, max_cost)

    def limits(self, max_trials: int | None = None, hours: float | None = None,
               max_cost: float | None = None) -> Limits:
        c = self.config
        return Limits(c.max_trials if max_trials is None else max_trials, c.hours if hours is None else hours,
                      c.max_cost if max_cost is None else max_cost, c.max_agent_failures, time.monotonic(),
                      c.stall)       # h13: --stall

    # ------------------------------------------------------------------ resume
    def resume(self) -> None:
        """Before the loop: the agent usable, git reconciled with the ledger, the data prepared."""
        agents_mod.check(self.agent)
        if hasattr(self.agent, "check_harness"):     # e.g. the builtin agent's [search] names, before the baseline
            self.agent.check_harness(self.harness)
        self.sandbox = sandbox.detect(self.config.sandbox)
        os.environ["AUTORESEARCH_SANDBOX"] = self.config.sandbox      # the executors' workers use the same walls
        if not self.sandbox.enforced:
            self.display.message(f"warning: {self.sandbox.note}")
        sandbox.private()
        self.reconcile()
        self.tracker.resume(self.trials)         # log what an earlier session could not
        preparation.check(self.ws.root, self.harness)
        h = self.harness
        self.display.message(f"study on {self.ws.branch} in {self.ws.root} (agent {self.agent_name}, profile "
                             f"{h.profile or '-'}, budget {h.budget:g} s, {len(self.trials)} trials so far)")

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
        meta, fingerprint, trials = ledger.meta(), self.harness.fingerprint(), ledger.load()
        if meta.get("fingerprint") and meta["fingerprint"] != fingerprint and trials:
            raise WorkspaceError(
                f"tag {ws.tag!r} holds results of another harness (read-only files, metric, budget, profile or "
                f"data differ from what it was run with): start a new tag with --tag, or restore the harness")
        if meta.get("fingerprint") != fingerprint:      # new tag, or nothing recorded under the old harness
            meta = {"fingerprint": fingerprint, "tag": ws.tag, "created": time.time(),
                    "readonly": ws.checksums(self.harness.readonly), "metric": self.harness.metric,
                    "direction": self.harness.direction, "profile": self.harness.profile}
            ledger.write_meta(meta)
        self.readonly_sums = meta.get("readonly") or ws.checksums(self.harness.readonly)
        self._meta = meta
        self.pins, self.overhead = dict(meta.get("pins") or {}), meta.get("overhead")
        self.trials = trials
        self.load.restore(trials)       # h13: the baseline's CPU shares, the quiet reference
        for t in list(trials):           # a close call re-measured the best: those values belong to it
            for number, values in (t.extra.get("best_reruns") or {}).items():
                self.grow(int(number), values)
        self.fit_noise()
        kept = [t for t in self.trials if t.state == TrialState.KEEP]
        self.best = kept[-1] if kept else None
        if self.best is not None:
            if not ws.has_commit(self.best.commit):
                raise WorkspaceError(f"the best trial's commit {self.best.commit[:7]} is missing from git: "
                                     f"was the branch rewritten? Start a new tag with --tag")
            if ws.head() != self.best.commit:
                ws.reset_hard(self.best.commit)
        self._ledger_seen = self._ledger_state()
        self._git_seen = ws.guard()

    def _clean_up_after_kill(self) -> None:
        """A study killed with kill -9 may leave its runs' process groups and git's index lock."""
        from autoresearch import processes
        owner, groups = running.orphans(self.ledger.dir)
        if owner is not None:
            raise WorkspaceError(f"another autoresearch process (pid {owner}) is running a study on tag "
                                 f"{self.ws.tag} here: stop it first, or use another --tag")
        for pgid in groups:
            processes.kill_group(pgid)
        # locks left by a git command killed with the tool (git dies with it; no git runs here but ours)
        gitdir = self.ws.root / ".git"
        for lock in [*gitdir.glob("*.lock"), *(gitdir / "refs").rglob("*.lock")]:
            lock.unlink(missing_ok=True)

    # ------------------------------------------------------------------ what the loop asks
    def new_number(self) -> int:
        """A trial number, given once, when the trial is proposed: the smallest one neither recorded
        nor given out already (a trial lost to a kill or cancelled by Ctrl-C gives its number back)."""
        taken = self._given | {t.number for t in self.trials}
        number = next(n for n in range(len(taken) + 1) if n not in taken)
        self._given.add(number)
        return number

    def context(self, number: int, root=None) -> agents_mod.Context:
        """What the agent sees for trial `number`, editing the checkout at root (default: the workspace)."""
        h, root = self.harness, root or self.ws.root
        files = {n: (root / n).read_text(errors="replace") if (root / n).exists() else "" for n in h.editable}
        program = (root / h.program).read_text(errors="replace") if (root / h.program).exists() else ""
        last_failure = ""
        for t in reversed(self.trials):
            if t.state == TrialState.KEEP:
                break
            if t.state in (TrialState.CRASH, TrialState.TIMEOUT):
                last_failure = t.extra.get("tail", "") or t.reason
                break
        # the hidden holdout score never reaches an agent
        hide = {t.number: t.replace(extra={k: v for k, v in t.extra.items() if k not in ("holdout", "holdout_sd")})
                for t in self.trials}
        return agents_mod.Context(root=root, program=program, files=files, editable=h.editable,
                                  readonly=h.readonly, history=tuple(hide.values()),
                                  best=hide.get(self.best.number) if self.best else None,
                                  last_failure=last_failure, metric=h.metric, direction=h.direction,
                                  noise_sd=self.judge.sd, trial_number=number, seed=self.config.seed,
                                  search=dict(h.search), stall_hint=self.config.stall_hint,
                                  sandbox=self.sandbox, hidden=tuple(h.paths("hidden")))

    def check(self, root, proposal) -> str:
        """'' when the proposal left a usable change in the checkout at root; else why not (INVALID)."""
        h = self.harness
        if proposal.invalid:
            return f"no usable change: {proposal.invalid}"
        changed = Workspace(root, tag=self.ws.tag).changed_files()
        if not changed:
            return "no change: the agent left the files as they were"
        outside = [f for f in changed if f not in h.editable]
        if outside:
            return f"touched files outside the editable ones: {', '.join(outside[:10])}"
        missing = [f for f in h.editable if not (root / f).exists()]
        if missing:
            return f"deleted an editable file: {', '.join(missing)}"
        odd = [f for f in h.editable if not (root / f).is_file() or (root / f).is_symlink()]
        if odd:
            return f"not a regular file any more: {', '.join(odd)}"
        return ""

    def describe(self, proposal) -> str:
        """The proposal's one line, printable, at most 300 characters."""
        return clean(proposal.description or "", 300) or "(no description)"

    def overfits(self, holdout: float | None) -> bool:
        """A kept candidate whose holdout is worse than the best's beyond the baseline's holdout noise:
        its val gain does not hold on held-out data (it is discarded; the agent hears only that)."""
        base = next((t for t in self.trials if t.kind == "baseline"), None)
        best = self.best.extra.get("holdout") if self.best else None
        if holdout is None or best is None or base is None or "holdout_sd" not in base.extra:
            return False
        return overfits(holdout, best, base.extra["holdout_sd"], self.harness.direction, self.config.sigma)

    def pin_baseline(self, m, overhead: float, runs: int) -> None:
        """What later runs are held to: the data the evaluator read (its *_sha256 lines) and the wall
        seconds a run takes besides training (start-up, compile), from which the hard limit follows."""
        self.pins = dict(getattr(m, "pins", {}) or {})
        self.overhead = max(0.0, overhead / max(1, runs))
        self._meta = dict(self._meta, pins=self.pins, overhead=self.overhead)
        self.ledger.write_meta(self._meta)
        self._ledger_seen = self._ledger_state()

    def run_limits(self, cand=None, kind: str = "run") -> dict:
        """What a run is held to: the pinned data digests, the hard wall-clock limit, the curve it must keep up with."""
        from autoresearch import measurement
        return dict(pins=self.pins, timeout=measurement.hard_limit(self.harness, self.overhead),
                    prune=pruning.for_run(self, cand, kind))

    def twin(self, code_hash: str) -> tuple[TrialState, str, float | None] | None:
        """(state, reason, value) when this code ran before: the same code is never run twice."""
        t = next((t for t in self.trials if t.code_hash == code_hash and t.commit), None)
        if t is None:
            return None
        state = TrialState.DISCARD if t.state in (TrialState.KEEP, TrialState.DISCARD) else t.state
        return state, f"same code as trial {t.number}: not run again", t.value

    def kept_at(self, commit: str) -> Trial:
        """The kept trial whose commit this is (a candidate's base)."""
        return next(t for t in reversed(self.trials) if t.commit == commit and t.state == TrialState.KEEP)

    def decide(self, values, base: Trial):
        """The judge's verdict on values against the kept trial `base` (keep, discard or confirm)."""
        return self.judge.decide(list(values), list(base.values) or [base.value])

    def fit_noise(self, extra=None) -> None:
        """Pooled noise from every recorded group of repeats, plus a group still being measured."""
        groups = [t.values for t in self.trials if len(t.values) >= 2]
        self.judge.fit(groups + ([list(extra)] if extra and len(extra) >= 2 else []))

    @property
    def noise_warning(self) -> str:
        return noise.warning(self.judge.sd, self.harness.profile, self.judge.dof)

    def grow(self, number: int, values) -> None:
        """New measurements of a trial's code (a close call re-ran the best): its mean sharpens."""
        for i, t in enumerate(self.trials):
            if t.number == number and t.values:
                grown = t.values + tuple(values)
                self.trials[i] = t.replace(values=grown, value=statistics.fmean(grown))
                if self.best is not None and self.best.number == number:
                    self.best = self.trials[i]

    def cost(self, proposal) -> float:
        if proposal is None:
            return 0.0
        from autoresearch.agents import pricing
        return pricing.cost(proposal, self.harness.section("prices"))

    # ------------------------------------------------------------------ recording
    def tell(self, cand) -> Trial:
        """Record a finished Candidate: the Trial, pinned, appended to the ledger (fsync) before any
        git move; a keep makes it the best. The one place a ledger row is written."""
        trial = self._trial(cand)
        if trial.commit:
            self.ws.pin(trial.number, trial.commit)
        self.ledger.append(trial)
        self.tracker.after_record(trial)
        self._ledger_seen = self._ledger_state()
        self.trials.append(trial)
        if cand.agent_failed or (trial.state == TrialState.INVALID and not trial.commit):
            self.failures += 1               # an unusable proposal is the agent's failure too
        elif cand.proposal is not None:
            self.failures = 0
        if trial.state == TrialState.KEEP:
            self.best = trial
        self.fit_noise()
        self.display.trial_done(trial, self.best)
        return trial

    def _trial(self, cand) -> Trial:
        commit = cand.commit if cand.runs and cand.unrun is None else ""
        judged = bool(commit) and cand.state in (TrialState.KEEP, TrialState.DISCARD)
        values = tuple(cand.values) if judged else ()
        last = cand.last_run()
        metrics = dict(last.result.summary) if judged and last is not None else {}
        if values:
            metrics[self.harness.metric] = statistics.fmean(values)
        extra = {}
        if cand.failed is not None:
            extra["tail"] = cand.failed.result.tail[-4000:]
        if cand.knobs is not None:
            extra["knobs"] = cand.knobs
        if cand.proposal is not None and cand.proposal.extra:
            extra["agent"] = {k: v for k, v in cand.proposal.extra.items() if _jsonable(v)}
        if cand.state == TrialState.KEEP and cand.holdout is not None:
            extra["holdout"] = cand.holdout      # kept trials only; agents never see it
            if cand.holdout_sd is not None:
                extra["holdout_sd"] = cand.holdout_sd
        if cand.best_values:
            extra["best_reruns"] = {str(cand.best_number): list(cand.best_values)}
        if cand.runs:
            extra.update(worker=cand.worker, node=cand.node, base=cand.base, rebased=cand.rebased)
        if cand.stale:
            extra["stale"] = cand.stale
        extra.update(cand.notes(), **pruning.record(cand))   # tree search's node, disturbed re-runs; curves
        if cand.kind == "baseline":
            extra.update(self.load.record())                         # h13: the quiet reference, for a resume
        logged = last or (cand.runs[-1] if cand.runs else None)
        log = os.path.relpath(logged.result.log_path, self.ws.root) if logged and logged.result.log_path else ""
        wall, training = cand.seconds()
        p = cand.proposal
        return Trial(number=cand.number, state=cand.state, description=cand.description, commit=commit,
                     parent=cand.base, value=statistics.fmean(values) if values else cand.twin_value,
                     values=values, metrics=metrics, seconds=wall, training_seconds=training, reason=cand.reason,
                     margin=cand.margin if judged else None, code_hash=cand.code_hash if commit else "",
                     kind=cand.kind, agent=self.agent_name, profile=self.harness.profile, tag=self.ws.tag,
                     cost_usd=self.cost(p), tokens_in=getattr(p, "tokens_in", 0) or 0,
                     tokens_out=getattr(p, "tokens_out", 0) or 0, agent_seconds=cand.agent_seconds, log=log,
                     started=cand.started, ended=time.time(), extra=extra)

    # ------------------------------------------------------------------ tamper checks
    def _ledger_state(self) -> str:
        return self.ledger.digest()

    def tampered(self) -> str:
        """'' when nothing but this study wrote to the ledger or to git's own files since it last looked;
        else what was changed (then restored: the ledger from memory, .git's files as they were)."""
        why = []
        if self._ledger_seen is not None and self._ledger_state() != self._ledger_seen:
            self.repair_ledger()
            why.append("the run wrote to the ledger (results.tsv or trials.jsonl); restored")
        if self._git_seen is not None:
            changed = self.ws.tampered(self._git_seen)
            if changed:
                why.append(f"the run changed git's own files ({', '.join(changed[:5])}): restored")
        return "; ".join(why)

    def guard_git(self) -> dict:
        return self.ws.guard()

    def repair_ledger(self) -> None:
        """Rewrite the ledger from memory: what a run wrote there never counts."""
        tmp = self.ledger.jsonl.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(t.to_dict(), sort_keys=True) + "\n" for t in self.trials))
        os.replace(tmp, self.ledger.jsonl)
        self.ledger.write_meta(self._meta)
        self.ledger.tsv.unlink(missing_ok=True)
        self.ledger.open()
        self._ledger_seen = self._ledger_state()

    def restore_best(self) -> None:
        """Put the branch and the main tree on the best commit (after Ctrl-C or an error)."""
        try:
            if self.best is not None and self.best.commit:
                self.ws.reset_hard(self.best.commit)
        except AutoresearchError:
            pass
        running.clear(self.ledger.dir)


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False
