"""The scheduler with the local executor over a fake harness in a real git repo: two trials in
flight, stale candidates re-based and re-run before keep, conflicts discarded, dying workers
recorded as crashes, pipelining, Ctrl-C, and resume after a kill -9 of the driver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoresearch.config import Config
from autoresearch.executors import parallel_optimize
from autoresearch.executors.local import LocalExecutor
from autoresearch.ledger import Ledger
from autoresearch.study import Study
from autoresearch.trial import TrialState
from tests.fakes import SANDBOXED, PREPARE, TOML, ScriptedAgent, git

ROOT = Path(__file__).resolve().parents[1]

# knobs on lines apart, so that changes to X and to Y re-base onto each other without conflict
TRAIN = '''\
"""fake harness: metric = (X - 3)^2 + (Y - 3)^2 + 1; SLEEP seconds of "training"."""
import os, sys, time
X = 1.0  # knob one

# apart


Y = 1.0  # knob two

# apart


SLEEP = 0.0  # seconds

# apart


MODE = "ok"  # ok | killself | killparent
time.sleep(SLEEP)
if MODE == "killself": os.kill(os.getpid(), 9)
if MODE == "killparent": os.kill(os.getppid(), 9); time.sleep(1); sys.exit(0)
value = (X - 3) ** 2 + (Y - 3) ** 2 + 1
print("cache:", os.environ.get("AUTORESEARCH_CACHE"), "cwd:", os.getcwd())
print("---"); print(f"val_bpb: {value:.6f}"); print("training_seconds: 0.1")
'''


def make_ws(root: Path, tag: str = "t", train: str = TRAIN) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(train)
    (root / "prepare.py").write_text(PREPARE)
    (root / "program.md").write_text("Lower val_bpb.\n")
    (root / "autoresearch.toml").write_text(TOML.format(allowance=20))
    from autoresearch.workspace import init
    init(root, tag=tag)
    return root


def edit(**knobs):
    """A scripted step that sets knobs in train.py."""
    def step(root):
        from autoresearch import knobs as k
        p = Path(root) / "train.py"
        p.write_text(k.rewrite(p.read_text(), knobs))
        return ", ".join(f"{n} -> {v}" for n, v in knobs.items())
    return step


def study_for(ws, steps, **cfg):
    agent = ScriptedAgent(steps)
    return Study(ws, agent=agent, config=Config.load({"baseline_runs": 2, **cfg})), agent


def check_ledger_and_git(ws, tag="t"):
    """Ledger and git agree: numbers 0..n-1, HEAD is the last kept, the kept commits form a line
    (each one's git parent is the previous kept commit), nothing left in flight."""
    trials = Ledger(ws, tag).load()
    assert [t.number for t in trials] == list(range(len(trials)))
    kept = [t for t in trials if t.state == TrialState.KEEP]
    assert git(ws, "rev-parse", "HEAD") == kept[-1].commit
    assert git(ws, "status", "--porcelain") == ""
    for prev, t in zip(kept, kept[1:]):
        assert git(ws, "rev-parse", f"{t.commit}^") == prev.commit
        assert t.parent == prev.commit
    assert len(git(ws, "worktree", "list").splitlines()) == 1
    assert not (ws / ".autoresearch" / tag / "running.json").exists()
    rows = (ws / "results.tsv").read_text().splitlines()
    assert len(rows) == len(trials) + 1
    for t in trials[1:]:
        assert {"worker", "node", "base", "rebased"} <= set(t.extra)
    return trials


@pytest.fixture
def ws(tmp_path):
    return make_ws(tmp_path / "ws")


def test_two_workers_keep_a_linear_branch(ws):
    steps = [edit(X=2.0, SLEEP=0.3), edit(Y=2.0, SLEEP=0.3), edit(X=0.5, SLEEP=0.3), edit(Y=2.5, SLEEP=0.3)]
    study, agent = study_for(ws, steps)
    parallel_optimize(study, LocalExecutor(2), max_trials=4)
    trials = check_ledger_and_git(ws)
    assert len(trials) == 5
    ran = [t for t in trials[1:] if t.commit]
    assert {t.extra["worker"] for t in ran} <= {"local-0", "local-1"}
    # changes to both X and Y made it onto the branch, whichever order they finished in, and the
    # best's value is what the branch's code measures
    from autoresearch import knobs
    k = {n: v.value for n, v in knobs.find((ws / "train.py").read_text()).items()}
    assert k["X"] == 2.0 and k["Y"] in (2.0, 2.5)
    assert study.best.value == pytest.approx((k["X"] - 3) ** 2 + (k["Y"] - 3) ** 2 + 1)
    # agents worked in worktrees, never in the main tree
    assert all(c.root != ws and ".autoresearch" in str(c.root) for c in agent.contexts)
    assert (ws / trials[1].log).exists() and trials[1].log.endswith("t-1.log")


def test_stale_candidate_is_rebased_and_rerun_before_keep(ws):
    # B (slow, Y) and A (fast, X) start together on the baseline; A is kept first, so B was
    # measured on a base that is no longer the best: it is cherry-picked onto A and run again
    study, _ = study_for(ws, [edit(Y=2.5, SLEEP=1.5), edit(X=2.0)])
    parallel_optimize(study, LocalExecutor(2), max_trials=2)
    trials = check_ledger_and_git(ws)
    a, b = trials[1], trials[2]
    assert a.description == "X -> 2.0" and a.state == TrialState.KEEP and not a.extra["rebased"]
    assert b.description.startswith("Y -> 2.5") and b.state == TrialState.KEEP
    assert b.extra["rebased"] is True
    assert b.parent == a.commit == b.extra["base"]
    assert git(ws, "rev-parse", f"{b.commit}^") == a.commit
    # measured after re-basing: X = 2 and Y = 2.5 give 2.25; on the old base it measured 5.25
    assert b.values == (pytest.approx(2.25),)
    assert b.extra["stale"][0]["values"] == [pytest.approx(5.25)]
    assert b.extra["stale"][0]["base"] == trials[0].commit
    assert b.seconds > 2 * 1.5     # two runs of 1.5 s
    assert git(ws, "rev-parse", "HEAD") == b.commit


def test_conflicting_rebase_is_discarded_with_the_reason(ws):
    study, _ = study_for(ws, [edit(X=2.5, SLEEP=1.5), edit(X=2.0)])
    parallel_optimize(study, LocalExecutor(2), max_trials=2)
    trials = check_ledger_and_git(ws)
    assert trials[1].state == TrialState.KEEP and trials[1].description == "X -> 2.0"
    b = trials[2]
    assert b.state == TrialState.DISCARD
    assert "conflicted in train.py" in b.reason and "trial 1" in b.reason
    assert b.commit == "" and b.extra["rebased"] is True
    assert b.extra["stale"][0]["values"] == [pytest.approx(5.25)]
    assert "X = 2.0" in (ws / "train.py").read_text()


def test_dying_runs_and_workers_are_crashes_and_the_study_goes_on(ws):
    study, _ = study_for(ws, [edit(MODE="killself"), edit(MODE="killparent"), edit(X=2.0)])
    parallel_optimize(study, LocalExecutor(1), max_trials=3)
    trials = check_ledger_and_git(ws)
    assert [t.state for t in trials[1:]] == [TrialState.CRASH, TrialState.CRASH, TrialState.KEEP]
    assert "exit code -9" in trials[1].reason
    if SANDBOXED:     # the run's parent is its sandbox's init, which ignores the kill: the worker is out of reach
        assert "no finite val_bpb" in trials[2].reason
    else:
        assert "worker process died" in trials[2].reason and "signal 9" in trials[2].reason
    assert trials[3].value == pytest.approx(6.0)


class SlowAgent(ScriptedAgent):
    def __init__(self, steps, delay):
        super().__init__(steps)
        self.delay = delay

    def propose(self, context):
        time.sleep(self.delay)
        return super().propose(context)


def test_pipelining_hides_the_agent(ws):
    # agent 0.6 s, run 1 s, one worker: serial ~ 1/1.6 busy; pipelined: the next proposal is ready
    # (X and Y alternate, so a proposal made while the best moved re-bases without conflict)
    steps = [edit(**{"XY"[i % 2]: 1.0 + (i // 2 + 1) / 10, "SLEEP": 1.0}) for i in range(5)]
    study = Study(ws, agent=SlowAgent(steps, 0.6), config=Config.load({"baseline_runs": 1}))
    parallel_optimize(study, LocalExecutor(1), max_trials=5)
    trials = check_ledger_and_git(ws)
    # (the busy fraction itself is measured in benchmarks/parallel.py, not asserted here: timing)
    # proposals were made while the previous run was still going: each began before its
    # predecessor's run ended
    overlapped = sum(trials[i].started < trials[i - 1].ended for i in range(2, len(trials)))
    assert overlapped >= 3
    assert [t.state for t in trials[1:]] == [TrialState.KEEP] * 5
    assert sum(t.extra["rebased"] for t in trials) >= 3        # proposed ahead, re-based before running
    assert trials[-1].value == pytest.approx(1.7 ** 2 + 1.8 ** 2 + 1)


def test_agent_failures_and_twins_are_recorded_unrun(ws):
    boom = RuntimeError("agent bug")
    study, _ = study_for(ws, [boom, edit(X=2.0, SLEEP=0.5), edit(X=2.0, SLEEP=0.5), lambda root: "nothing"])
    parallel_optimize(study, LocalExecutor(2), max_trials=4)
    trials = check_ledger_and_git(ws)
    by = {t.description: t for t in trials}
    assert by["agent crashed (RuntimeError): agent bug"].state == TrialState.INVALID
    assert by["nothing"].state == TrialState.INVALID and "no change" in by["nothing"].reason
    twins = [t for t in trials if t.description == "X -> 2.0, SLEEP -> 0.5"]
    assert len(twins) == 2 and sum(1 for t in twins if t.commit) == 1
    assert any("same code" in t.reason for t in twins)


def test_status_lists_the_trials_in_flight(ws):
    from autoresearch import report
    steps = [edit(X=2.0, SLEEP=2.0), edit(Y=2.0, SLEEP=2.0)]
    study, _ = study_for(ws, steps, baseline_runs=1)
    seen = []

    class Watching(LocalExecutor):
        def wait(self, handles, timeout=None):
            info = report.running(ws / ".autoresearch" / "t")
            if info:
                seen.append(info)
            return super().wait(handles, timeout)

    parallel_optimize(study, Watching(2), max_trials=2)
    both = [i for i in seen if len(i.get("trials", [])) == 2]
    assert both, seen[-3:]
    assert {t["description"] for t in both[-1]["trials"]} == {"X -> 2.0, SLEEP -> 2.0", "Y -> 2.0, SLEEP -> 2.0"}
    assert both[-1]["number"] == both[-1]["trials"][0]["number"]     # the one-trial format still reads
    text = report.summary([], now_running=both[-1])
    assert "running   trial" in text and "Y -> 2.0, SLEEP" in text and "X -> 2.0, SLEEP" in text
    one = report.summary([], now_running={"number": 7, "description": "old format", "since": time.time()})
    assert "running   trial 7: old format" in one


def test_interrupt_cancels_runs_and_records_nothing_half_done(ws):
    study, _ = study_for(ws, [edit(X=2.0, SLEEP=30), edit(Y=2.0, SLEEP=30)], baseline_runs=1)

    class Interrupting(LocalExecutor):
        def wait(self, handles, timeout=None):
            if len(handles) == 2:
                raise KeyboardInterrupt
            return super().wait(handles, timeout)

    t0 = time.monotonic()
    parallel_optimize(study, Interrupting(2), max_trials=2)
    assert time.monotonic() - t0 < 20
    trials = check_ledger_and_git(ws)
    assert len(trials) == 1 and study.stop_reason == "interrupted"
    out = subprocess.run(["pgrep", "-f", "train.py"], capture_output=True, text=True).stdout.split()
    for pid in out:   # no trainer of this workspace left running
        try:
            assert str(ws) not in Path(f"/proc/{pid}/cwd").resolve().as_posix()
        except FileNotFoundError:
            pass


DRIVER = """
import sys
from autoresearch.config import Config
from autoresearch.executors import parallel_optimize
from autoresearch.executors.local import LocalExecutor
from autoresearch.study import Study
from tests.fakes import ScriptedAgent
from tests.test_scheduler import edit
steps = [edit(X=round(1 + i * 0.05, 2), Y=round(1 + i * 0.05, 2), SLEEP=0.4) for i in range(1, 40)]
study = Study(sys.argv[1], agent=ScriptedAgent(steps), config=Config.load({"baseline_runs": 1}))
parallel_optimize(study, LocalExecutor(2), max_trials=39)
"""


def test_resume_after_the_driver_is_killed(ws):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(ws)], cwd=ROOT, env=env)
    ledger = Ledger(ws, "t")
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and len(ledger.load()) < 4:
        time.sleep(0.05)
    time.sleep(0.25)               # somewhere in the middle of the next trials
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = ledger.load()
    assert len(before) >= 4
    assert len(git(ws, "worktree", "list").splitlines()) > 1      # the killed driver left worktrees
    steps = [edit(X=3.0, Y=3.0), edit(X=2.9)]
    study, agent = study_for(ws, steps, baseline_runs=1)
    parallel_optimize(study, LocalExecutor(2), max_trials=2)
    trials = check_ledger_and_git(ws)
    assert len(trials) == len(before) + 2
    assert [t.to_dict() for t in trials[: len(before)]] == [t.to_dict() for t in before]
    assert sum(1 for t in trials if t.kind == "baseline") == 1
    assert trials[-2].description == "X -> 3.0, Y -> 3.0" or trials[-1].description == "X -> 3.0, Y -> 3.0"
    assert study.best.value == pytest.approx(1.0)
    assert not list((ws / ".autoresearch" / "t" / "worktrees").iterdir())


SCORED_TRAIN = TRAIN.replace('print("---")', 'open(os.environ["AUTORESEARCH_MODEL_OUT"], "w").write(str(value))\nprint("---")')
SCORED_PREPARE = PREPARE + '''if "--score" in sys.argv:        # the fake evaluator: the saved "model" is its value
    v = float(open(sys.argv[sys.argv.index("--score") + 1]).read())
    print("---"); print(f"val_bpb: {v + (0.5 if 'holdout' in sys.argv else 0.0):.6f}")
'''


def test_kept_trials_get_the_hidden_holdout_score_and_agents_never_see_it(tmp_path):
    root = make_ws(tmp_path / "ws", train=SCORED_TRAIN)
    (root / "prepare.py").write_text(SCORED_PREPARE)
    toml = (root / "autoresearch.toml").read_text().replace(
        'metric = "val_bpb"', 'score = "python prepare.py --score {model}"\n'
                              'holdout = "python prepare.py --score {model} --split holdout"\nmetric = "val_bpb"')
    (root / "autoresearch.toml").write_text(toml)
    git(root, "commit", "-qam", "a scoring harness")
    study, agent = study_for(root, [edit(X=2.0), edit(X=6.0), edit(Y=2.5)])
    parallel_optimize(study, LocalExecutor(2), max_trials=3)
    trials = check_ledger_and_git(root)
    assert trials[0].extra["holdout"] == pytest.approx(trials[0].value + 0.5)
    kept = [t for t in trials[1:] if t.state == TrialState.KEEP]
    others = [t for t in trials[1:] if t.state != TrialState.KEEP]
    assert kept and others
    for t in kept:
        assert t.extra["holdout"] == pytest.approx(t.value + 0.5)
    assert all("holdout" not in t.extra for t in others)
    assert all("holdout" not in t.extra for c in agent.contexts for t in c.history)
    assert list((root / ".autoresearch" / "logs").glob("t-*.holdout.log"))
