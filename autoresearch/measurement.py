"""Measurement: one run of the harness in one directory, classified.

`measure()` runs the harness' run command under the external limit, then the protected
evaluator on the saved model, and classifies the outcome: crash, timeout, out of memory,
forged score, changed read-only file, or a value of record. It needs only a directory and
the Harness, so the local study and a Ray worker on another node call the same code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch import runner
from autoresearch.hashing import checksums
from autoresearch.sandbox import Sandbox
from autoresearch.trial import TrialState

NOT_FINITE = 5      # a score command's exit code for "the metric is NaN or infinite": a crash, not a forgery


@dataclass(frozen=True)
class Measurement:
    state: TrialState            # KEEP stands for "ran fine" here; the judge decides the rest
    value: float | None
    result: runner.RunResult
    reason: str = ""
    holdout: float | None = None  # the hidden holdout score, when asked for (never shown to an agent)
    pins: dict = field(default_factory=dict)   # `*_sha256` values the score printed (the data it read)
    disturbed: str = ""          # judged although other load took its CPU (autoresearch/disturbance.py)
    curve: tuple = ()            # (fraction, loss, seconds) per progress line of the run (autoresearch/pruning.py)
    cold: bool = False           # it compiled with no compile cache yet (a study's first runs), unlike the rest

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds the run's process tree got (user + system), from the runner."""
        return self.result.cpu_seconds


def harness_env(harness, extra: dict | None = None) -> dict:
    """The harness' own variables (profile, data source, cache), on top of a scrubbed environment."""
    env = runner.thread_env()      # torch's threads: the cores this process may use
    if harness.profile:
        env["AUTORESEARCH_PROFILE"] = harness.profile
    if harness.data:
        env["AUTORESEARCH_DATA"] = harness.data
    if harness.budget:
        env["AUTORESEARCH_BUDGET"] = f"{harness.budget:g}"      # the toml is the budget's one source
    # always the resolved path: a sandboxed run's HOME is its scratch folder, where ~/.cache is empty
    env["AUTORESEARCH_CACHE"] = os.environ.get("AUTORESEARCH_CACHE") or os.path.join(os.path.expanduser("~"),
                                                                                     ".cache", "autoresearch")
    env.update(extra or {})
    return runner.scrub_env(extra=env)


def tail_lines(text: str, n: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def budget_limit(budget: float, steps: float | None = None, claimed: float = 0.0, overrun: float = 0.0) -> float:
    """The most training seconds a run may claim: the budget plus the harness' stated `overrun`, else an
    allowance for the step that crosses it: 2 s, 10% of the budget, or two mean steps (from the run's
    num_steps) where steps are long (a loaded machine, a tiny budget), but never more than the budget again."""
    if overrun:
        return budget + overrun
    step = claimed / steps if steps and steps > 0 else 0.0
    return budget + max(2.0, 0.1 * budget, min(budget, 2.0 * step))


def hard_limit(harness, overhead: float | None) -> float:
    """Wall seconds after which a run is killed: the budget's limit plus the start-up and evaluation
    time measured on the baseline (overhead), twice over and 30 s more; before any measurement, or
    where the harness states its allowance, budget + allowance."""
    if not overhead or harness.allowance:
        return harness.timeout
    return 1.5 * harness.budget + 2.0 * overhead + 30.0


@dataclass(frozen=True)
class Walls:
    """The sandbox and what it hides, for one run in one folder (see autoresearch/sandbox.py)."""
    box: Sandbox
    hidden: tuple = ()
    readable: tuple = ()
    outputs: tuple = ()       # the harness' output folders: writable for a run, backed by its scratch

    @classmethod
    def of(cls, harness, box: Sandbox | None) -> "Walls":
        """box None: the study's mode (AUTORESEARCH_SANDBOX, set by the study for its workers too)."""
        if box is None:
            from autoresearch import sandbox
            box = sandbox.detect(os.environ.get("AUTORESEARCH_SANDBOX", "auto"))
        python = Path(harness.interpreter()[0]).resolve()     # the repository's own venv may live elsewhere
        return cls(box, tuple(harness.paths("hidden")), (*harness.paths("readable"), python.parent.parent),
                   tuple(harness.outputs))

    def wrap(self, argv, cwd, scratch, readable=(), run: bool = False) -> list[str]:
        """run: the training run itself, which may write into the harness' output folders."""
        writable = ()
        if run and self.box.enforced:
            for rel in self.outputs:
                (Path(cwd) / rel).mkdir(parents=True, exist_ok=True)   # an empty folder: git does not see it
            writable = self.outputs
        return self.box.wrap(argv, cwd, scratch, hidden=self.hidden, readable=(*self.readable, *readable),
                             writable=writable)

    def prefix(self, cwd, readable=()) -> str:
        """The argv prefix (JSON) a scorer puts before its model workers, `{scratch}` their folder."""
        if not self.box.enforced:
            return "[]"
        marker = "/autoresearch-scratch-marker"
        argv = self.wrap([], cwd, marker, readable)
        return json.dumps([a.replace(marker, "{scratch}") for a in argv])


def seed_offset(number: int, repeat: int) -> int:
    """AUTORESEARCH_SEED_OFFSET for the repeat-th run (0: the first) of trial `number`'s code: the harness adds it
    to its SEED (prepare.run_seed), so every run of a study starts from a seed of its own, the baseline's first
    from SEED itself. Repeats of one code then measure the noise any change of it meets: with one seed, a
    repeat replayed the same trajectory but for its timing (smoke profile: sd 0.005, against 0.011 between
    seeds), and a change that landed on a luckier trajectory kept its luck when re-run. And no trial shares
    a seed with a run of the best: a trial's first run on the baseline's first run's seed replayed that run's
    curve until its change took effect, so where that seed ran behind the baseline's mean early, every trial
    started behind, and pruning stopped 19 of 20 trials of one study."""
    return 1000 * number + repeat


def measure(root: Path, harness, readonly_sums: dict, log: Path, model: Path, memory_limit_mb: float = 0.0,
            rescore: bool = True, on_progress=None, trial: int = 0, on_start=None,
            keep_model: bool = False, holdout: bool = False, sandbox: Sandbox | None = None,
            timeout: float | None = None, pins: dict | None = None, compile_cache: Path | None = None,
            seeds: bool = False, seed_offset: int = 0) -> Measurement:
    """Run the harness once in root and classify the outcome. Never raises for the run's faults.
    holdout: also score the hidden holdout split after a run of record (where only the run's node
    has the model: the parallel scheduler; the serial loop scores kept models only).
    The run writes only into a scratch folder beside `model` (sandboxed: nothing else is writable),
    which is deleted afterwards; the model it saved there moves to `model`, and is deleted too
    unless keep_model (then the caller deletes it). timeout: the hard wall-clock limit (default:
    the harness'); pins: `*_sha256` values an earlier score printed, which this one must repeat.
    compile_cache: torch.compile's caches (inductor, triton) as the baseline left them, copied into the run's
    scratch folder (a run never sees another trial's cache, nor leaves one behind); seeds: this is a baseline
    run (the human's code): where there is no such cache yet, the one it leaves becomes it. seed_offset:
    AUTORESEARCH_SEED_OFFSET, which the harness adds to its seed (seed_offset() above)."""
    root = Path(root)
    walls = Walls.of(harness, sandbox)

    def changed():
        now = checksums(root, harness.readonly)
        return [n for n, s in now.items() if readonly_sums.get(n) != s]

    bad = changed()
    if bad:
        return Measurement(TrialState.INVALID, None, runner.RunResult(None, False, 0.0, ""),
                           f"read-only file changed: {', '.join(bad)}")
    model.parent.mkdir(parents=True, exist_ok=True)
    model.unlink(missing_ok=True)
    scratch = model.parent / f"{model.stem}.scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "home").mkdir(parents=True)
    scoring = bool(harness.score and rescore)
    extra = {"AUTORESEARCH_MODEL_OUT": str(scratch / "model.pt"), "AUTORESEARCH_TRIAL": str(trial),
             "AUTORESEARCH_SEED_OFFSET": str(seed_offset)}
    if walls.box.enforced:      # the home folder and /tmp are empty and read-only in there
        extra.update(HOME=str(scratch / "home"), TMPDIR=str(scratch), XDG_CACHE_HOME=str(scratch / "home"))
    if scoring:
        extra["AUTORESEARCH_RESCORE"] = "1"   # the harness may leave its own evaluation to the protected one
    compiled, seeded = scratch / "compile", 0
    cold = compile_cache is not None and not compile_cache.is_dir()     # the study has no cache yet
    if compile_cache is not None and not cold:
        shutil.copytree(compile_cache, compiled, symlinks=True)
        seeded = runner.tree_bytes(compiled)
        if walls.box.enforced:
            headers(compiled, scratch, keep=False)
    extra.update(TORCHINDUCTOR_CACHE_DIR=str(compiled / "inductor"), TRITON_CACHE_DIR=str(compiled / "triton"))
    env = harness_env(harness, extra)
    try:
        result = runner.run(walls.wrap(harness.command(harness.run), root, scratch, run=True), root,
                            timeout or harness.timeout, log, env=env, memory_limit_mb=memory_limit_mb or None,
                            on_progress=on_progress, on_start=on_start, preload=harness.preload,
                            spares=2 if scoring else 1, watch=scratch,
                            max_write_bytes=int(harness.max_write_mb * 2**20) + seeded if harness.max_write_mb else 0)
        # (spares for the re-score and the next run, started while this one trains; see warm.start)
        result = harness.summarize(result)       # a plain `test loss: X` line, when the harness names one
        saved = scratch / "model.pt"
        if saved.is_file() and not saved.is_symlink():
            os.replace(saved, model)
        cold = cold and compiled.is_dir() and any(compiled.iterdir())     # it compiled, and from nothing
        if seeds and result.ok and compile_cache is not None and not compile_cache.exists() and compiled.is_dir():
            if walls.box.enforced:
                headers(compiled, scratch, keep=True)
            seed_cache(compiled, compile_cache)
        shutil.rmtree(scratch, ignore_errors=True)
        m = _classify(root, harness, result, model, changed, memory_limit_mb, rescore, on_start, walls, pins or {})
        m = dataclasses.replace(m, cold=cold) if cold else m
        if holdout and m.state == TrialState.KEEP:
            m = dataclasses.replace(m, holdout=score_holdout(root, harness, model, Path(log).with_suffix(".holdout.log"),
                                                             memory_limit_mb, sandbox))
        return m
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if not keep_model:
            model.unlink(missing_ok=True)     # models are large; the commit reproduces one


def compile_cache(harness) -> Path:
    """Where a study keeps torch.compile's caches as its baseline run left them (see measure())."""
    return Path(harness.root) / ".autoresearch" / "compile-cache"


HEADERS = "headers"        # in a compile cache: inductor's precompiled C++ headers (headers())


def headers(compiled: Path, scratch: Path, keep: bool) -> None:
    """torch.compile's C++ kernels on the CPU include a precompiled header that inductor keeps under the temp
    folder (TMPDIR/torchinductor_<user>/precompiled_headers), not in TORCHINDUCTOR_CACHE_DIR, and a sandboxed
    run's TMPDIR is its own empty scratch: every run built it again, though its kernels came from the cache
    (cpu profile: the first step took 8-10 s instead of about 3). keep=True, after a baseline run: its headers
    go into the compile cache it seeds (compiled/headers/torchinductor_<user>/...); keep=False, before a run:
    the cache's copy goes where the run's inductor looks. A run's headers are a copy, as its kernels are: what
    it writes there reaches no other run. (Unsandboxed, TMPDIR is the machine's, where they last anyway.)"""
    if keep:
        for mine in scratch.glob("torchinductor_*/precompiled_headers"):
            if mine.is_dir() and not mine.is_symlink():
                to = compiled / HEADERS / mine.parent.name / mine.name
                to.parent.mkdir(parents=True, exist_ok=True)
                os.replace(mine, to)
        return
    for user in (compiled / HEADERS).glob("torchinductor_*"):
        if not (scratch / user.name).exists():
            os.replace(user, scratch / user.name)


def seed_cache(compiled: Path, cache: Path) -> None:
    """Keep a baseline run's compile cache for the runs after it (the first repeat to finish wins)."""
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.{id(compiled)}.tmp")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(compiled, tmp, symlinks=True)
        os.rename(tmp, cache)
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def score_holdout(root: Path, harness, model: Path, log: Path, memory_limit_mb: float = 0.0,
                  sandbox: Sandbox | None = None) -> float | None:
    """The harness' holdout score of a saved model, or None (no holdout command, or it failed)."""
    if not harness.holdout or not model.exists():
        return None
    r = _score(harness.holdout, root, harness, model, log, memory_limit_mb, Walls.of(harness, sandbox))
    return r.metric(harness.metric) if r.returncode == 0 else None


def holdout_stats(root: Path, harness, models, logs, sandbox: Sandbox | None, memory_limit_mb: float = 0.0) -> tuple:
    """(mean, sd) of the holdout scores of saved models (sd from two or more), or (None, None)."""
    values = [v for v in (score_holdout(root, harness, m, log, memory_limit_mb, sandbox) for m, log in zip(models, logs))
              if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) >= 2 else None)


def _score(text, root, harness, model, log, memory_limit_mb, walls, on_start=None) -> runner.RunResult:
    """A score command: trusted code (read-only files), run outside the sandbox in an isolated interpreter;
    it starts the model's code through the walls it is handed (AUTORESEARCH_WALLS)."""
    scratch = Path(log).with_suffix(".scratch")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    env = harness_env(harness, {"AUTORESEARCH_WALLS": walls.prefix(root, readable=(model,)),
                                "AUTORESEARCH_SCRATCH": str(scratch), "AUTORESEARCH_MODULES": harness.modules()})
    try:
        return runner.run(harness.command(text, isolated=True, model=str(model)), root, max(120.0, harness.timeout),
                          log, env=env, memory_limit_mb=memory_limit_mb or None, on_start=on_start,
                          preload=harness.preload)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _classify(root, harness, result, model, changed, memory_limit_mb, rescore, on_start, walls,
              pins) -> Measurement:
    bad = changed()
    if bad:
        return Measurement(TrialState.INVALID, None, result, f"the run changed read-only file(s): {', '.join(bad)}")
    tail = tail_lines(result.tail)
    if result.timed_out:
        return Measurement(TrialState.TIMEOUT, None, result, f"timeout after {result.seconds:.0f} s\n{tail}")
    if result.killed == "writes":
        return Measurement(TrialState.INVALID, None, result, f"wrote more than {harness.max_write_mb:.0f} MB "
                                                            f"(max_write_mb)\n{tail}")
    if result.killed == "memory":
        return Measurement(TrialState.CRASH, None, result, f"out of memory (limit {memory_limit_mb:.0f} MB)\n{tail}")
    if result.returncode != 0:
        return Measurement(TrialState.CRASH, None, result, f"exit code {result.returncode}\n{tail}")
    printed = result.metric(harness.metric)
    scoring = bool(harness.score and rescore)
    if printed is None and not (scoring and harness.metric not in result.summary):
        # (a run told AUTORESEARCH_RESCORE may print no metric at all; a non-finite one is a crash)
        return Measurement(TrialState.CRASH, None, result, f"no finite {harness.metric} in the summary block\n{tail}")
    if not result.summary:
        return Measurement(TrialState.CRASH, None, result, f"no summary block (--- then key: value lines)\n{tail}")
    claimed = result.metric("training_seconds")
    if claimed is not None and claimed > result.seconds + 2.0:
        return Measurement(TrialState.INVALID, None, result,
                           f"claims {claimed:.1f} s of training in a run that took {result.seconds:.1f} s")
    limit = budget_limit(harness.budget, result.metric("num_steps"), claimed or 0.0, harness.overrun)
    if claimed is not None and harness.budget and claimed > limit:
        return Measurement(TrialState.INVALID, None, result, f"trained {claimed:.1f} s on a budget of "
                                                            f"{harness.budget:g} s (at most {limit:.1f} s with the allowance)")
    if not scoring:
        return Measurement(TrialState.KEEP, printed, result)
    if not model.exists():
        return Measurement(TrialState.INVALID, None, result,
                           f"no saved model at {model.name} for the protected evaluator to score")
    scored = _score(harness.score, root, harness, model, Path(result.log_path).with_suffix(".score.log"),
                    memory_limit_mb, walls, on_start)
    value = scored.metric(harness.metric)
    if scored.returncode == NOT_FINITE:
        return Measurement(TrialState.CRASH, None, result, f"the model's {harness.metric} is not finite "
                                                          f"(protected evaluator)\n{tail_lines(scored.tail)}")
    if scored.returncode != 0 or value is None:
        return Measurement(TrialState.INVALID, None, result, f"the protected evaluator rejected the model "
                                                            f"(exit {scored.returncode})\n{tail_lines(scored.tail)}")
    if printed is not None and abs(value - printed) > harness.score_tolerance * max(1.0, abs(value)):
        return Measurement(TrialState.INVALID, None, result,
                           f"printed {harness.metric} {printed:.6f} but the protected evaluator measured {value:.6f}")
    now = {k: str(v) for k, v in scored.summary.items() if k.endswith("_sha256")}
    moved = [k for k, v in now.items() if pins.get(k, v) != v]
    if moved:
        return Measurement(TrialState.INVALID, None, result, f"the files the evaluator read changed during the study "
                                                            f"({', '.join(f'{k} {now[k]}, was {pins[k]}' for k in moved)})")
    return Measurement(TrialState.KEEP, value, result, pins=now)
