"""Measurement: one run of the harness in one directory, classified.

`measure()` runs the harness' run command under the external limit, then the protected
evaluator on the saved model, and classifies the outcome: crash, timeout, out of memory,
forged score, changed read-only file, or a value of record. It needs only a directory and
the Harness, so the local study and a Ray worker on another node call the same code.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from autoresearch import runner
from autoresearch.hashing import checksums
from autoresearch.trial import TrialState

NOT_FINITE = 5      # a score command's exit code for "the metric is NaN or infinite": a crash, not a forgery


@dataclass(frozen=True)
class Measurement:
    state: TrialState            # KEEP stands for "ran fine" here; the judge decides the rest
    value: float | None
    result: runner.RunResult
    reason: str = ""
    holdout: float | None = None  # the hidden holdout score, when asked for (never shown to an agent)


def harness_env(harness, extra: dict | None = None) -> dict:
    """The harness' own variables (profile, data source, cache), on top of a scrubbed environment."""
    env = {}
    if harness.profile:
        env["AUTORESEARCH_PROFILE"] = harness.profile
    if harness.data:
        env["AUTORESEARCH_DATA"] = harness.data
    if "AUTORESEARCH_CACHE" in os.environ:
        env["AUTORESEARCH_CACHE"] = os.environ["AUTORESEARCH_CACHE"]
    env.update(extra or {})
    return runner.scrub_env(extra=env)


def tail_lines(text: str, n: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def measure(root: Path, harness, readonly_sums: dict, log: Path, model: Path, memory_limit_mb: float = 0.0,
            rescore: bool = True, on_progress=None, trial: int = 0, on_start=None,
            keep_model: bool = False, holdout: bool = False) -> Measurement:
    """Run the harness once in root and classify the outcome. Never raises for the run's faults.
    holdout: also score the hidden holdout split after a run of record (where only the run's node
    has the model: the parallel scheduler; the serial loop scores kept models only).
    The saved model is deleted afterwards unless keep_model (then the caller deletes it)."""
    root = Path(root)

    def changed():
        now = checksums(root, harness.readonly)
        return [n for n, s in now.items() if readonly_sums.get(n) != s]

    bad = changed()
    if bad:
        return Measurement(TrialState.INVALID, None, runner.RunResult(None, False, 0.0, ""),
                           f"read-only file changed: {', '.join(bad)}")
    model.parent.mkdir(parents=True, exist_ok=True)
    model.unlink(missing_ok=True)
    scoring = bool(harness.score and rescore)
    extra = {"AUTORESEARCH_MODEL_OUT": str(model), "AUTORESEARCH_TRIAL": str(trial)}
    if scoring:
        extra["AUTORESEARCH_RESCORE"] = "1"   # the harness may leave its own evaluation to the protected one
    env = harness_env(harness, extra)
    try:
        result = runner.run(runner.command(harness.run), root, harness.timeout, log, env=env,
                            memory_limit_mb=memory_limit_mb or None, on_progress=on_progress, on_start=on_start,
                            preload=harness.preload, spares=2 if scoring else 1)
        # (spares for the re-score and the next run, started while this one trains; see warm.start)
        m = _classify(root, harness, result, model, env, changed, memory_limit_mb, rescore, on_start)
        if holdout and m.state == TrialState.KEEP:
            m = dataclasses.replace(m, holdout=score_holdout(root, harness, model, Path(log).with_suffix(".holdout.log"),
                                                             memory_limit_mb))
        return m
    finally:
        if not keep_model:
            model.unlink(missing_ok=True)     # models are large; the commit reproduces one


def score_holdout(root: Path, harness, model: Path, log: Path, memory_limit_mb: float = 0.0) -> float | None:
    """The harness' holdout score of a saved model, or None (no holdout command, or it failed)."""
    if not harness.holdout or not model.exists():
        return None
    env = harness_env(harness, {"AUTORESEARCH_MODEL_OUT": str(model)})
    r = runner.run(runner.command(harness.holdout, model=str(model)), root, max(120.0, harness.timeout), log,
                   env=env, memory_limit_mb=memory_limit_mb or None, preload=harness.preload)
    return r.metric(harness.metric) if r.returncode == 0 else None


def _classify(root, harness, result, model, env, changed, memory_limit_mb, rescore, on_start=None) -> Measurement:
    bad = changed()
    if bad:
        return Measurement(TrialState.INVALID, None, result, f"the run changed read-only file(s): {', '.join(bad)}")
    tail = tail_lines(result.tail)
    if result.timed_out:
        return Measurement(TrialState.TIMEOUT, None, result, f"timeout after {result.seconds:.0f} s\n{tail}")
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
    if not scoring:
        return Measurement(TrialState.KEEP, printed, result)
    if not model.exists():
        return Measurement(TrialState.INVALID, None, result,
                           f"no saved model at {model.name} for the protected evaluator to score")
    score_log = Path(result.log_path).with_suffix(".score.log")
    scored = runner.run(runner.command(harness.score, model=str(model)), root, max(120.0, harness.timeout),
                        score_log, env=env, memory_limit_mb=memory_limit_mb or None, on_start=on_start,
                        preload=harness.preload)
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
    return Measurement(TrialState.KEEP, value, result)
