"""Fakes for the loop's tests: a 30-line harness in a real git repo, and a scripted agent.

The fake harness prints a metric computed from its constants X and Y ((X - 3)^2 + (Y - 3)^2 + 1,
so X = Y = 3 is best), sleeps SLEEP seconds of "training", saves its value as the "model" the fake
evaluator (prepare.py --score) re-scores, and, by its MODE constant, crashes, hangs, prints NaN,
floods output, writes to the ledger, kills itself or its parent, and so on. The knobs sit on lines
apart, so changes to X and to Y re-base onto each other without conflict. The fixtures that make
workspaces from it are in conftest.py.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from autoresearch.agents import Agent, Proposal
from autoresearch.sandbox import detect

# bubblewrap works here: a run's write to a read-only file or the ledger fails (a CRASH: "Read-only
# file system", or the ledger is not there at all) instead of being caught afterwards (INVALID)
SANDBOXED = detect("auto").enforced

TRAIN = '''\
"""fake harness: metric = (X - 3)^2 + (Y - 3)^2 + 1; SLEEP seconds of "training"; MODE picks a failure."""
import os, sys, time
X = 1.0  # knob one

# apart


Y = 3.0  # knob two

# apart


SLEEP = 0.0  # seconds

# apart


MODE = "ok"  # ok | crash | hang | nan | flood | ledger | readonly | secrets | noisy | loud | lucky | killself | killparent | stall

# apart


CURVE = False  # print progress lines (fraction of the budget, a loss that ends near the value); MODE "stall" then hangs
time.sleep(SLEEP)
if MODE == "crash": raise RuntimeError("boom: crashed on purpose")
if MODE == "hang": time.sleep(3600)
if MODE == "flood": [sys.stdout.write("spam " * 200 + "\\n") for _ in range(200000)]  # 200 MB
if MODE == "ledger": open("../../trials.jsonl", "a").write("{}\\n")   # the ledger, from a run's worktree
if MODE == "readonly": open("prepare.py", "a").write("# changed at run time\\n")
if MODE == "secrets": print("seen:", ",".join(sorted(k for k in os.environ if "KEY" in k or "TOKEN" in k)))
if MODE == "killself": os.kill(os.getpid(), 9)
if MODE == "killparent": os.kill(os.getppid(), 9); time.sleep(1); sys.exit(0)
value = (X - 3) ** 2 + (Y - 3) ** 2 + 1 + (float("nan") if MODE == "nan" else 0.0)
if MODE == "noisy": value += __import__("random").gauss(0, 0.05)
if MODE == "lucky": value -= 1.0 * (int(os.environ.get("AUTORESEARCH_SEED_OFFSET") or 0) % 1000 == 0)  # a code's first run
if MODE == "loud": value += 0.3 * (os.path.basename(os.path.dirname(os.environ["AUTORESEARCH_MODEL_OUT"])).count(".") - 1)
if os.environ.get("AUTORESEARCH_MODEL_OUT"): open(os.environ["AUTORESEARCH_MODEL_OUT"], "w").write(str(value))
print("cache:", os.environ.get("AUTORESEARCH_CACHE"), "cwd:", os.getcwd(), "trial:", os.environ.get("AUTORESEARCH_TRIAL"),
      "seed offset:", os.environ.get("AUTORESEARCH_SEED_OFFSET"))
print("step 00001 (50.0%) | loss: 1.000000 | remaining: 0s", flush=True)
if CURVE: [print(f"progress: {f / 10:.2f} loss: {value + 1 - f / 10:.6f}", flush=True) for f in range(1, 10)]
if MODE == "stall": time.sleep(3600)
print("---"); print(f"val_bpb: {value:.6f}"); print("training_seconds: 0.1"); print("peak_vram_mb: 10.0")
'''

PREPARE = '''\
"""fake read-only file; --score: the fake evaluator (the saved "model" is its value; holdout adds 0.5)"""
SECRET_SPLIT = 42
import os, sys
if "--check" in sys.argv and os.environ.get("AUTORESEARCH_FAKE_UNPREPARED"):
    print("not prepared: run autoresearch prepare"); sys.exit(1)
if "--score" in sys.argv:
    v = float(open(sys.argv[sys.argv.index("--score") + 1]).read())
    print("---"); print(f"val_bpb: {v + (0.5 if 'holdout' in sys.argv else 0.0):.6f}")
'''

TOML = '''\
[harness]
editable = ["train.py"]
readonly = ["prepare.py"]
run = "python train.py"
prepare = "python prepare.py"
check = "python prepare.py --check"
{scoring}metric = "val_bpb"
direction = "minimize"
budget = 1
allowance = {allowance}

[study]
baseline_runs = 2

[search]
X = [0.0, 6.0, "linear"]
'''

SCORING = '''score = "python prepare.py --score {model}"
holdout = "python prepare.py --score {model} --split holdout"
'''


def make_fake_workspace(root: Path, tag: str = "t", allowance: float = 8.0, scored: bool = False, **knobs) -> Path:
    """The fake harness in a fresh git workspace; knobs (e.g. Y=1.0) set its starting constants."""
    from autoresearch import knobs as k
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(k.rewrite(TRAIN, knobs) if knobs else TRAIN)
    (root / "prepare.py").write_text(PREPARE)
    (root / "program.md").write_text("Change X to lower val_bpb.\n")
    (root / "autoresearch.toml").write_text(TOML.format(allowance=allowance, scoring=SCORING if scored else ""))
    from autoresearch.workspace import init
    init(root, tag=tag)
    return root


COMPILE = ('graph = os.path.join(os.environ["TORCHINDUCTOR_CACHE_DIR"], "graph")   # a stand-in for torch.compile\n'
           'value += 0.0 if os.path.exists(graph) else 1.0\n'
           'os.makedirs(graph, exist_ok=True); open(os.path.join(graph, "kernel"), "w").write("compiled")\n')


# inductor's precompiled C++ header, which it keeps under the temp folder (measurement.headers): a run that
# finds none builds it and scores 0.5 worse; every run appends to it, as a hostile one may
HEADERS = ('import getpass, tempfile\n'
           'gch = os.path.join(tempfile.gettempdir(), "torchinductor_" + getpass.getuser(), "precompiled_headers", "p.h.gch")\n'
           'value += 0.0 if os.path.exists(gch) else 0.5\n'
           'os.makedirs(os.path.dirname(gch), exist_ok=True); open(gch, "a").write("header")\n')


def compiling(ws: Path, headers: bool = False) -> Path:
    """The fake harness with a stand-in for torch.compile, committed: a run whose compile cache
    (TORCHINDUCTOR_CACHE_DIR) holds no graph yet writes one and scores 1.0 worse (it spent its budget
    compiling); one that starts from a cache with the graph scores as before. headers: a precompiled
    header under TMPDIR too (HEADERS; meant for sandboxed runs, whose TMPDIR is their own folder)."""
    train = ws / "train.py"
    stand_in = COMPILE + (HEADERS if headers else "")
    train.write_text(train.read_text().replace('if MODE == "noisy"', stand_in + 'if MODE == "noisy"', 1))
    git(ws, "commit", "-qam", "a harness that compiles")
    return ws


def value(X=1.0, Y=3.0) -> float:
    """What the fake harness measures for these knobs."""
    return (X - 3) ** 2 + (Y - 3) ** 2 + 1


def set_knob(root: Path, name: str, value) -> None:
    from autoresearch import knobs
    p = Path(root) / "train.py"
    p.write_text(knobs.rewrite(p.read_text(), {name: value}))


class ScriptedAgent(Agent):
    """Plays a list of steps; each step is a callable(root) -> description, an Exception to raise,
    or a Proposal to return. `on_propose(context)`, when set, is called first (tests watch with it)."""
    name = "scripted"

    def __init__(self, steps, on_propose=None):
        self.steps = list(steps)
        self.contexts = []
        self.on_propose = on_propose

    def propose(self, context):
        self.contexts.append(context)
        if self.on_propose is not None:
            self.on_propose(context)
        step = self.steps.pop(0) if self.steps else (lambda root: set_knob(root, "X", 3.0) or "X -> 3")
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, Proposal):
            return step
        return Proposal(step(context.root) or "(scripted)")


def make_study(ws, steps, **cfg):
    """A Study over ws with a scripted agent; cfg overrides [study] settings (environment ignored)."""
    from autoresearch.config import Config
    from autoresearch.study import Study
    agent = ScriptedAgent(steps)
    return Study(ws, agent=agent, config=Config.load({"baseline_runs": 2, **cfg}, environ={})), agent


def edit(fn, desc):
    """A step that rewrites train.py's text with fn."""
    def step(root):
        p = root / "train.py"
        p.write_text(fn(p.read_text()))
        return desc
    return step


def knob(name, value):
    def step(root):
        set_knob(root, name, value)
        return f"{name} -> {value}"
    return step


def knobs(**values):
    """A step that sets several knobs at once: knobs(X=2.0, SLEEP=0.3)."""
    def step(root):
        from autoresearch import knobs as k
        p = Path(root) / "train.py"
        p.write_text(k.rewrite(p.read_text(), values))
        return ", ".join(f"{n} -> {v}" for n, v in values.items())
    return step


def git(root, *args) -> str:
    """git in root, with an identity of its own (CI machines have no global one)."""
    ident = ["-c", "user.name=test", "-c", "user.email=test@localhost"]
    return subprocess.run(["git", *ident, *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def check_ledger_and_git(ws, tag="t"):
    """Ledger and git agree once a study has stopped: numbers unique and 0..n-1, HEAD is the last
    kept, the kept commits form a line (each one's git parent is the previous kept commit), the
    tree is clean, nothing left in flight, one TSV row per trial."""
    from autoresearch.ledger import Ledger
    from autoresearch.trial import TrialState
    trials = Ledger(ws, tag).load()
    assert sorted(t.number for t in trials) == list(range(len(trials))), [(t.number, t.state.value, t.description, t.reason[:60]) for t in trials]
    kept = [t for t in trials if t.state == TrialState.KEEP]
    assert git(ws, "rev-parse", "HEAD") == kept[-1].commit
    assert git(ws, "status", "--porcelain") == ""
    for prev, t in zip(kept, kept[1:]):
        assert git(ws, "rev-parse", f"{t.commit}^") == prev.commit
        assert t.parent == prev.commit
    worktrees = git(ws, "worktree", "list")
    assert len(worktrees.splitlines()) == 1, worktrees
    assert not (ws / ".autoresearch" / tag / "running.json").exists()
    rows = (ws / "results.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["commit", "val_bpb", "memory_gb", "status", "description"]
    assert len(rows) == len(trials) + 1
    return trials


# ---------------------------------------------------------------- orderings by events, never by sleeping
PATIENCE = 120.0      # seconds a test waits for an event before it fails (a bound, never a race)


def gated(base, hold):
    """An executor class whose wait() reports a finished run only when hold(executor, handle) is False."""
    class Gated(base):
        def wait(self, handles, timeout=None):
            done = super().wait(handles, timeout)
            out = [h for h in done if not hold(self, h)]
            if done and not out:
                time.sleep(0.02)
            return out
    return Gated


def until(event, what: str, detail=None) -> None:
    """Wait for event() to be true; fail after PATIENCE seconds (saying detail(), when given)."""
    deadline = time.monotonic() + PATIENCE
    while not event():
        assert time.monotonic() < deadline, f"gave up waiting for {what}" + (f": {detail()}" if detail else "")
        time.sleep(0.02)


def trainers_of(where: str) -> list[int]:
    """Live processes of fake training runs in a folder containing `where` (a workspace, a Ray task's
    folder): the run itself, by its folder, or the sandbox around it (bwrap), by its arguments (a
    sandboxed run's own folder is not readable from outside)."""
    import psutil
    out = []
    for p in psutil.process_iter(["cmdline", "cwd", "status"]):
        argv = p.info["cmdline"] or [""]
        if (argv[-1:] == ["train.py"] and p.info["status"] != psutil.STATUS_ZOMBIE
                and (str(where) in (p.info["cwd"] or "") or any(str(where) in a for a in argv[:-1]))):
            out.append(p.pid)
    return out


def processes(pids) -> str:
    """pid, parent, state and command of each live pid: what a test that waited in vain saw."""
    import psutil
    out = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            out.append(f"{pid} (parent {p.ppid()}, {p.status()}): {' '.join(p.cmdline())[-200:]}")
        except psutil.Error:
            out.append(f"{pid} gone")
    return "; ".join(out)
