"""A second harness unlike ours, for the `adopt` recipe's tests: someone else's repository.

Its `train.py` fits a line by gradient descent with momentum in pure Python (well under a second):
hyperparameters are argparse flags, not UPPER_CASE constants; it reads `data/points.txt`, writes
tensorboard-like events and a checkpoint into `out/`, and prints `train loss: X test loss: Y`
lines, with no `---` summary block. The default learning rate is too small, so a larger one
lowers the test loss; the run is deterministic (seeded), so its repeats are identical.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

TRAIN = '''\
"""Fit y = a*x + b by full-batch gradient descent with momentum."""
import argparse
import json
import os
import random


def main():
    p = argparse.ArgumentParser(description="toy trainer")
    p.add_argument("--lr", type=float, default=0.001, help="learning rate")
    p.add_argument("--momentum", type=float, default=0.5)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--eval-interval", type=int, default=25)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out-dir", default="out")
    args = p.parse_args()
    random.seed(args.seed)
    xs = [float(t) for t in open("data/points.txt").read().split()]
    ys = [3.0 * x + 1.0 + random.gauss(0, 0.1) for x in xs]
    train, test = list(zip(xs, ys))[::2], list(zip(xs, ys))[1::2]
    loss = lambda a, b, pts: sum((a * x + b - y) ** 2 for x, y in pts) / len(pts)
    a = b = va = vb = 0.0
    os.makedirs(args.out_dir, exist_ok=True)
    events = open(os.path.join(args.out_dir, f"events.out.tfevents.{os.getpid()}"), "w")
    for step in range(1, args.steps + 1):
        ga = sum(2 * (a * x + b - y) * x for x, y in train) / len(train)
        gb = sum(2 * (a * x + b - y) for x, y in train) / len(train)
        va, vb = args.momentum * va - args.lr * ga, args.momentum * vb - args.lr * gb
        a, b = a + va, b + vb
        if step % args.eval_interval == 0 or step == args.steps:
            tr, te = loss(a, b, train), loss(a, b, test)
            events.write(f"{step} {tr} {te}\\n")
            print(f"step {step} | lr {args.lr} | train loss: {tr:.6f} test loss: {te:.6f}", flush=True)
    json.dump({"a": a, "b": b}, open(os.path.join(args.out_dir, "ckpt.json"), "w"))


if __name__ == "__main__":
    main()
'''

POINTS = " ".join(f"{i / 20:.3f}" for i in range(-40, 41)) + "\n"


def git(root, *args) -> str:
    ident = ["-c", "user.name=someone", "-c", "user.email=someone@example.com"]
    return subprocess.run(["git", *ident, *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def make_toy_repo(root: Path) -> Path:
    """A committed repository on branch main: train.py, data/points.txt, README.md, .gitignore."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(TRAIN)
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "points.txt").write_text(POINTS)
    (root / "README.md").write_text("# toy\n\n`python train.py --lr 0.05`\n")
    (root / ".gitignore").write_text("__pycache__/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "toy trainer")
    return root
