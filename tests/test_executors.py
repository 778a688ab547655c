"""executors: the inline executor runs a job in a thread and cancels it by killing its process group;
get_executor picks by the config."""

from __future__ import annotations

from autoresearch.config import Config
from autoresearch.executors import get_executor
from autoresearch.executors.base import Job, Setup
from autoresearch.executors.inline import InlineExecutor
from autoresearch.executors.local import LocalExecutor
from autoresearch.harness import Harness
from autoresearch.trial import TrialState
from tests.fakes import set_knob, until


def test_get_executor_by_config():
    assert isinstance(get_executor(Config(workers=1)), InlineExecutor)
    ex = get_executor(Config(workers=3))
    assert isinstance(ex, LocalExecutor) and ex.slots == 3


def _job(ws, name):
    return Job(key=name, root=ws, commit="", log=ws / ".autoresearch" / f"{name}.log",
               model=ws / ".autoresearch" / f"{name}.pt", trial=7)


def test_inline_runs_reports_progress_and_cancels(ws):
    harness = Harness.load(ws)
    from autoresearch.hashing import checksums
    seen, started = [], []
    ex = InlineExecutor(on_progress=lambda job, p: seen.append(p.loss), on_start=lambda job, pgid: started.append(pgid))
    ex.start(Setup(harness, checksums(ws, harness.readonly)))
    h = ex.submit(_job(ws, "one"))
    until(lambda: ex.wait([h], 0.1), "the run to finish")
    out = ex.result(h)
    assert out.measurement.state == TrialState.KEEP and out.measurement.value == 5.0 and out.worker == "inline-0"
    assert seen and set(seen) == {1.0} and started                # progress and the group id reached the loop
    assert "trial: 7" in (ws / ".autoresearch" / "one.log").read_text()
    set_knob(ws, "MODE", "hang")
    started.clear()
    h = ex.submit(_job(ws, "two"))
    until(lambda: started, "the run to start")
    ex.cancel(h)
    until(lambda: ex.wait([h], 0.1), "the cancelled run to end")
    assert ex.result(h).cancelled
    ex.close()
