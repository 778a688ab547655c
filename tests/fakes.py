"""Fakes for the loop's tests: a 10-line harness in a real git repo, and a scripted agent.

The fake harness prints a metric computed from its constant X ((X - 3)^2 + 1, so X = 3 is
best) and, by its MODE constant, crashes, hangs, prints NaN, floods output, and so on.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from autoresearch.agents import Agent, Proposal
from autoresearch.sandbox import detect

# bubblewrap works here: a run's write to a read-only file or the ledger fails (a CRASH: "Read-only
# file system", or the ledger is not there at all) instead of being caught afterwards (INVALID)
SANDBOXED = detect("auto").enforced

TRAIN = '''\
"""fake harness: metric = (X - 3)^2 + 1; MODE picks a failure."""
import os, sys, time
X = 1.0  # the knob
MODE = "ok"  # ok | crash | hang | nan | flood | forge | noisy
if MODE == "crash": raise RuntimeError("boom: crashed on purpose")
if MODE == "hang": time.sleep(3600)
if MODE == "flood": [sys.stdout.write("spam " * 200 + "\\n") for _ in range(200000)]  # 200 MB
if MODE == "ledger": open(".autoresearch/" + os.environ.get("FAKE_TAG", "t") + "/trials.jsonl", "a").write("{}\\n")
if MODE == "readonly": open("prepare.py", "a").write("# changed at run time\\n")
if MODE == "secrets": print("seen:", ",".join(sorted(k for k in os.environ if "KEY" in k or "TOKEN" in k)))
value = (X - 3) ** 2 + 1 + (float("nan") if MODE == "nan" else 0.0)
if MODE == "noisy": value += __import__("random").gauss(0, 0.05)
print("step 00001 (50.0%) | loss: 1.000000 | remaining: 0s", flush=True)
print("---"); print(f"val_bpb: {value:.6f}"); print("training_seconds: 0.1"); print("peak_vram_mb: 10.0")
'''

PREPARE = '''\
"""fake read-only file"""
SECRET_SPLIT = 42
import sys
if "--check" in sys.argv and __import__("os").environ.get("AUTORESEARCH_FAKE_UNPREPARED"):
    print("not prepared: run autoresearch prepare"); sys.exit(1)
'''

TOML = '''\
[harness]
editable = ["train.py"]
readonly = ["prepare.py"]
run = "python train.py"
prepare = "python prepare.py"
check = "python prepare.py --check"
metric = "val_bpb"
direction = "minimize"
budget = 1
allowance = {allowance}

[study]
baseline_runs = 2

[search]
X = [0.0, 6.0, "linear"]
'''


def make_fake_workspace(root: Path, tag: str = "t", allowance: float = 8.0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(TRAIN)
    (root / "prepare.py").write_text(PREPARE)
    (root / "program.md").write_text("Change X to lower val_bpb.\n")
    (root / "autoresearch.toml").write_text(TOML.format(allowance=allowance))
    from autoresearch.workspace import init
    init(root, tag=tag)
    return root


def set_knob(root: Path, name: str, value) -> None:
    from autoresearch import knobs
    p = Path(root) / "train.py"
    p.write_text(knobs.rewrite(p.read_text(), {name: value}))


class ScriptedAgent(Agent):
    """Plays a list of steps; each step is a callable(root) -> description, or an Exception to raise."""
    name = "scripted"

    def __init__(self, steps):
        self.steps = list(steps)
        self.contexts = []

    def propose(self, context):
        self.contexts.append(context)
        step = self.steps.pop(0) if self.steps else (lambda root: set_knob(root, "X", 3.0) or "X -> 3")
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, Proposal):
            return step
        return Proposal(step(context.root) or "(scripted)")


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


def git(root, *args) -> str:
    """git in root, with an identity of its own (CI machines have no global one)."""
    ident = ["-c", "user.name=test", "-c", "user.email=test@localhost"]
    return subprocess.run(["git", *ident, *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
