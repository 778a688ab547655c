"""MLflow tracking against a real `mlflow server` (sqlite backend, loopback, started here): one run
per trial with its params, metrics, tags and diff; an outage never blocks or loses a trial, and
what could not be logged is logged when the study resumes, once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from autoresearch.config import Config
from autoresearch.ledger import Ledger
from autoresearch.study import Study
from autoresearch.trial import TrialState
from tests.fakes import ScriptedAgent, knob, make_fake_workspace

mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed: make install-test installs the extra")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def port():
    return _free_port()


def _start_server(tmp, port):
    exe = os.path.join(os.path.dirname(sys.executable), "mlflow")
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([exe, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                             "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                             "--artifacts-destination", str(tmp / "artifacts")],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            # no background job runner (a dozen worker processes): runs and artifacts only
                            env=dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):          # waits for the server's answer, not for a duration
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {(tmp / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.25)
    raise RuntimeError("mlflow server did not answer /health")


def _stop(proc):
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def _runs(url, tag):
    client = mlflow.tracking.MlflowClient(tracking_uri=url)
    exp = client.get_experiment_by_name(tag)
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000)


def test_an_outage_loses_nothing_and_resume_logs_each_trial_once(tmp_path, port):
    root = make_fake_workspace(tmp_path / "ws", tag="mlf")
    url = f"http://127.0.0.1:{port}"
    # the server is down: the study goes on, every trial is recorded, the failures are reported
    (root / "autoresearch.toml").write_text((root / "autoresearch.toml").read_text() + f'\n[tracking]\nmlflow = "{url}"\n')
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@l", "commit", "-qam", "tracking"], cwd=root, check=True)
    said = []
    study = Study(root, agent=ScriptedAgent([knob("X", 2.0), knob("X", 5.0)]), config=Config.load({}, environ={}))
    study.tracker.report = said.append
    study.tracker.tries, study.tracker.backoff_s = 2, 0.05
    study.optimize(max_trials=2)
    missing = study.tracker.close()
    assert len(Ledger(root, "mlf").load()) == 3
    assert missing == [0, 1, 2] and "not logged" in said[-1]
    assert study.tracker.logged() == set()

    server, url = _start_server(tmp_path, port)
    try:
        # resumed: the three from before are logged first, then the new trial after its row
        study = Study(root, agent=ScriptedAgent([knob("X", 3.0)]), config=Config.load({}, environ={}))
        study.optimize(max_trials=1)
        assert study.tracker.close() == []
        trials = Ledger(root, "mlf").load()
        runs = _runs(url, "mlf")
        assert sorted(int(r.data.tags["trial"]) for r in runs) == [t.number for t in trials] == [0, 1, 2, 3]
        # a third start finds everything logged: no run twice
        study = Study(root, agent=ScriptedAgent([]), config=Config.load({}, environ={}))
        study.tracker.resume(study.ledger.load())
        study.tracker.close()
        assert len(_runs(url, "mlf")) == 4

        by = {int(r.data.tags["trial"]): r for r in runs}
        kept = by[1]           # X 1 -> 2: better, kept
        assert kept.data.tags["state"] == "keep" and kept.data.tags["commit"] == trials[1].commit
        assert kept.data.tags["parent"] == trials[0].commit and kept.data.tags["profile"] == trials[1].profile
        assert kept.data.params["knob.X"] == "2.0" and kept.data.params["agent"] == "scripted"
        assert kept.data.metrics["val_bpb"] == pytest.approx(trials[1].value)
        assert kept.data.metrics["seconds"] == pytest.approx(trials[1].seconds)
        assert "memory_mb" in kept.data.metrics and "cost_usd" in kept.data.metrics
        assert by[2].data.tags["state"] == "discard" and "holdout" not in by[2].data.metrics
        client = mlflow.tracking.MlflowClient(tracking_uri=url)
        repeats = client.get_metric_history(kept.info.run_id, "val_bpb_repeat")
        assert [m.value for m in repeats] == pytest.approx(list(trials[1].values))
        patch = client.download_artifacts(kept.info.run_id, "diff.patch", str(tmp_path))
        text = open(patch).read()
        assert "-X = 1.0" in text and "+X = 2.0" in text
        assert all(t.state != TrialState.CRASH for t in trials)
    finally:
        _stop(server)
