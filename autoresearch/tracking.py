"""Tracking: one MLflow run per trial, logged after the ledger row, never in the loop's way.

    autoresearch run -C runs/demo --mlflow http://127.0.0.1:5000
    # or in autoresearch.toml:   [tracking]   mlflow = "http://127.0.0.1:5000"

The study calls `after_record(trial)` once the row is fsynced; a background thread logs it to
an experiment named after the tag: params (the knobs changed against the parent, the agent),
metrics (the metric, each repeat as a step, the holdout of kept trials, seconds, memory, cost),
tags (state, commit, parent, profile, trial) and the diff as the artifact `diff.patch`. A failed
attempt is retried; what still cannot be logged is reported, and logged when the study resumes:
`.autoresearch/<tag>/mlflow.json` lists the trials logged per tracking URI (a run found on the
server with the trial's number is not logged twice). An MLflow outage never blocks or loses a
trial: the ledger is the record, MLflow a copy.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path

from autoresearch.trial import Trial, TrialState

TRIES = 3                 # attempts per trial before it waits for the next resume
BACKOFF_S = 0.5           # doubled after each failed attempt
HTTP_TIMEOUT_S = "10"     # MLflow's own request timeout, seconds
STATES = {TrialState.KEEP: "FINISHED", TrialState.DISCARD: "FINISHED", TrialState.CRASH: "FAILED",
          TrialState.TIMEOUT: "FAILED", TrialState.INVALID: "FAILED"}


class NoTracking:
    """The stand-in when no tracking is configured: does nothing."""

    def resume(self, trials) -> None:
        pass

    def after_record(self, trial: Trial) -> None:
        pass

    def close(self, timeout: float | None = None) -> list[int]:
        return []


def for_study(ws, harness, uri: str | None = None, flag: bool = False, report=None):
    """The tracker a study uses: `--mlflow [URI]` (flag) over `[tracking] mlflow = URI`, else none."""
    table = harness.section("tracking") or {}
    if not flag and not table.get("mlflow"):
        return NoTracking()
    import importlib.util
    if importlib.util.find_spec("mlflow") is None:
        from autoresearch.errors import ConfigError
        raise ConfigError("MLflow tracking is asked for but mlflow is not installed: pip install 'autoresearch[mlflow]'")
    uri = uri or table.get("mlflow") or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri or uri is True:
        uri = f"sqlite:///{Path(ws.root) / '.autoresearch' / 'mlflow.db'}"
    return MLflowTracker(ws.root, ws.tag, str(uri), harness.metric, report=report)


class MLflowTracker:
    def __init__(self, root, tag: str, uri: str, metric: str = "val_bpb", report=None, tries: int = TRIES,
                 backoff_s: float = BACKOFF_S):
        self.root = Path(root)
        self.tag = tag
        self.uri = uri
        self.metric = metric
        self.tries = tries
        self.backoff_s = backoff_s
        self.report = report or (lambda line: print(line, file=sys.stderr, flush=True))
        self.record_path = self.root / ".autoresearch" / tag / "mlflow.json"
        self.failed: dict[int, str] = {}         # trial number -> last error, this session
        self._knobs: dict[str, dict] = {}        # commit -> knobs, of every trial seen
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._client = None
        self._experiment_id = None
        self._atexit = False

    # ------------------------------------------------------------------ the study's two calls
    def resume(self, trials) -> None:
        """At start: remember the history, and log every recorded trial MLflow has not got yet."""
        for t in trials:
            self._remember(t)
        done = self.logged()
        for t in trials:
            if t.number not in done:
                self._put(t)

    def after_record(self, trial: Trial) -> None:
        """After the ledger row is written: queue the trial; returns at once."""
        self._remember(trial)
        self._put(trial)

    def close(self, timeout: float | None = 120.0) -> list[int]:
        """Wait (at most timeout s) for the queue; report and return the trials not logged."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
        missing = sorted(self.failed)
        if missing:
            first = self.failed[missing[0]].splitlines()[0][:200] if self.failed[missing[0]] else ""
            self.report(f"mlflow: {len(missing)} trial(s) not logged to {self.uri} ({first}); they are logged "
                        f"when the study resumes: trials {', '.join(map(str, missing[:20]))}")
        return missing

    # ------------------------------------------------------------------ the record of what is logged
    def logged(self) -> set[int]:
        try:
            data = json.loads(self.record_path.read_text())
        except (OSError, json.JSONDecodeError):
            return set()
        return set((data.get(self.uri) or {}).get("trials", []))

    def _mark(self, number: int, run_id: str) -> None:
        with self._lock:
            try:
                data = json.loads(self.record_path.read_text())
            except (OSError, json.JSONDecodeError):
                data = {}
            entry = data.setdefault(self.uri, {"trials": [], "runs": {}})
            if number not in entry["trials"]:
                entry["trials"].append(number)
            entry.setdefault("runs", {})[str(number)] = run_id
            self.record_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.record_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1))
            os.replace(tmp, self.record_path)

    # ------------------------------------------------------------------ the worker
    def _remember(self, t: Trial) -> None:
        if t.commit and isinstance(t.extra.get("knobs"), dict):
            self._knobs[t.commit] = t.extra["knobs"]

    def _put(self, trial: Trial) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="mlflow", daemon=True)
            self._thread.start()
            if not self._atexit:
                # drain before the interpreter shuts its thread pools (MLflow uploads through one):
                # threading's own exit hooks run first, last registered first; atexit's come too late
                # (concurrent.futures first: imported late, it cannot register its own hook at exit)
                import concurrent.futures.thread  # noqa: F401
                register = getattr(threading, "_register_atexit", None) or atexit.register
                register(self.close, 30.0)
                self._atexit = True
        self._queue.put(trial)

    def _work(self) -> None:
        while True:
            trial = self._queue.get()
            if trial is None:
                return
            delay = self.backoff_s
            for attempt in range(self.tries):
                try:
                    run_id = self._log(trial)
                    self._mark(trial.number, run_id)
                    self.failed.pop(trial.number, None)
                    break
                except Exception as e:  # an outage is reported, never raised into the study
                    self.failed[trial.number] = f"{type(e).__name__}: {e}"
                    self._client = None
                    if attempt + 1 < self.tries:
                        time.sleep(delay)
                        delay *= 2

    def _connect(self):
        if self._client is None:
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")   # we retry, with the study going on
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", HTTP_TIMEOUT_S)
            os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # not over the live line
            from mlflow.tracking import MlflowClient
            client = MlflowClient(tracking_uri=self.uri)
            exp = client.get_experiment_by_name(self.tag)
            if exp is None:
                local = "://" not in self.uri or self.uri.startswith(("sqlite:", "file:"))
                where = (self.root / ".autoresearch" / "mlartifacts").as_uri() if local else None
                try:
                    self._experiment_id = client.create_experiment(self.tag, artifact_location=where)
                except Exception:
                    exp = client.get_experiment_by_name(self.tag)   # made meanwhile by another process
                    if exp is None:
                        raise
                    self._experiment_id = exp.experiment_id
            else:
                self._experiment_id = exp.experiment_id
            self._client = client
        return self._client

    def _log(self, t: Trial) -> str:
        from mlflow.entities import Metric, Param, RunTag
        client = self._connect()
        found = client.search_runs([self._experiment_id], filter_string=f"tags.trial = '{t.number}'",
                                   max_results=10)
        for run in found:
            if run.info.status in ("FINISHED", "FAILED"):
                return run.info.run_id               # logged before the record said so
            client.delete_run(run.info.run_id)       # half-logged by an attempt that failed
        stamp = int((t.ended or time.time()) * 1000)
        tags = {"state": t.state.value, "commit": t.commit, "parent": t.parent, "profile": t.profile,
                "trial": str(t.number), "kind": t.kind, "tag": t.tag or self.tag,
                "mlflow.note.content": t.description}
        if t.reason:
            tags["reason"] = t.reason[:5000]
        run = client.create_run(self._experiment_id, start_time=int((t.started or t.ended or time.time()) * 1000),
                                tags=tags, run_name=f"{t.number}: {t.description}"[:250])
        run_id = run.info.run_id
        params = [Param("agent", t.agent or "-")]
        for name, value in self.changed_knobs(t).items():
            params.append(Param(f"knob.{name}", str(value)[:5000]))
        metrics = []
        if t.value is not None:
            metrics.append(Metric(self.metric, float(t.value), stamp, 0))
        for i, v in enumerate(t.values):
            metrics.append(Metric(f"{self.metric}_repeat", float(v), stamp, i))
        holdout = t.extra.get("holdout")
        if t.state == TrialState.KEEP and isinstance(holdout, (int, float)):
            metrics.append(Metric("holdout", float(holdout), stamp, 0))
        memory = t.metrics.get("peak_vram_mb")
        for key, value in (("seconds", t.seconds), ("training_seconds", t.training_seconds),
                           ("memory_mb", memory), ("cost_usd", t.cost_usd), ("agent_seconds", t.agent_seconds),
                           ("tokens_in", t.tokens_in), ("tokens_out", t.tokens_out)):
            if isinstance(value, (int, float)):
                metrics.append(Metric(key, float(value), stamp, 0))
        client.log_batch(run_id, metrics=metrics, params=params, tags=[RunTag("runs", str(len(t.values)))])
        if t.commit and t.parent and t.commit != t.parent:
            client.log_text(run_id, self._diff(t.parent, t.commit), "diff.patch")
        client.set_terminated(run_id, status=STATES.get(t.state, "FINISHED"), end_time=stamp)
        return run_id

    def changed_knobs(self, t: Trial) -> dict:
        """The knobs whose value differs from the parent's (all of them for the baseline, or where the
        parent's were not recorded)."""
        knobs = t.extra.get("knobs") if isinstance(t.extra.get("knobs"), dict) else {}
        base = self._knobs.get(t.parent) if t.parent != t.commit else None
        if base is None:
            return dict(knobs)
        return {k: v for k, v in knobs.items() if base.get(k) != v}

    def _diff(self, a: str, b: str) -> str:
        from autoresearch.workspace import diff_text
        return diff_text(self.root, a, b)
