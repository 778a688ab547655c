"""
Benchmark: the loop's orchestration, measured side by side, printed, never asserted.

    python benchmarks/parallel.py                          # both parts, local executor, 2 s runs
    python benchmarks/parallel.py --executors local,ray    # scaling on both executors
    python benchmarks/parallel.py --part scaling --workers 1,2,4 --trials-per-worker 8
    python benchmarks/parallel.py --part latency --sleep 2 --delay 0.3
    python benchmarks/parallel.py --part slot --sleep 1 --latency-trials 10

The harness's "training" is a fixed sleep (--sleep seconds), so a 2-core machine measures the
orchestration, not arithmetic. Its metric is sum((K_i - 3)^2) + 1 over eight knobs kept on
lines apart; the agent sets one random knob to a random value (instantly, or after a fixed
delay), so keeps, stale bases, re-bases and conflicts all happen as they would.

1. Scaling: trials per hour with N = 1, 2, 4 workers (goal: >= 0.9 N x the N = 1 figure); also
   runs per hour (a re-based candidate runs twice; a conflict runs once or not at all) and the
   busy fraction per slot (run seconds / (wall x N)).
2. Agent latency: one slot and an agent that takes --delay x the run time per proposal: the
   fraction of wall time the runner is busy without pipelining and with it (goal >= 0.95;
   not pipelined ~ 1 / (1 + delay)).
3. One slot: the run in a thread of the driver (inline executor, the default for --workers 1)
   or in a worker process (local executor): wall time per trial beyond the run itself.
Wall time is counted from the end of the baseline to the end of the last trial.
"""

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KNOBS = [f"K{i}" for i in range(8)]
TRAIN = '"""sleep harness: metric = sum((K_i - 3)^2) + 1; SLEEP seconds of training."""\nimport time\n' + \
    "".join(f"{k} = {{start}}  # a knob\n\n\n" for k in KNOBS) + '''SLEEP = {sleep}  # seconds
time.sleep(SLEEP)
value = sum((v - 3) ** 2 for v in ({knobs})) + 1
print("---"); print(f"val_bpb: {{value:.6f}}"); print("training_seconds: {{SLEEP}}")
'''.replace("{knobs}", ", ".join(KNOBS))
TOML = '''[harness]
editable = ["train.py"]
readonly = ["prepare.py"]
run = "python train.py"
metric = "val_bpb"
direction = "minimize"
budget = {sleep}
allowance = 30
'''


def workspace(sleep: float, start: float = 1.0) -> Path:
    from autoresearch.workspace import init
    root = Path(tempfile.mkdtemp(prefix="ar-parallel-")) / "ws"
    root.mkdir()
    (root / "train.py").write_text(TRAIN.format(sleep=sleep, start=start))
    (root / "prepare.py").write_text('"""nothing to prepare"""\n')
    (root / "program.md").write_text("Lower val_bpb.\n")
    (root / "autoresearch.toml").write_text(TOML.format(sleep=sleep))
    init(root, tag="bench")
    return root


class RandomAgent:
    """Sets one random knob to a random value, after `delay` seconds (a stand-in for an LLM)."""
    name = "random"

    def __init__(self, delay: float = 0.0, seed: int = 0):
        self.delay = delay
        self.rng = random.Random(seed)

    def propose(self, context):
        from autoresearch import knobs
        from autoresearch.agents import Proposal
        time.sleep(self.delay)
        name = self.rng.choice(KNOBS)
        value = round(self.rng.uniform(0.0, 6.0), 3)
        p = Path(context.root) / "train.py"
        p.write_text(knobs.rewrite(p.read_text(), {name: value}))
        return Proposal(f"{name} -> {value}")


def study(sleep, delay=0.0, seed=0, start=1.0):
    from autoresearch.config import Config
    from autoresearch.study import Study
    return Study(workspace(sleep, start), agent=RandomAgent(delay, seed), config=Config.load({"baseline_runs": 1}))


def window(trials):
    base = next(t for t in trials if t.kind == "baseline")
    rest = [t for t in trials if t.kind != "baseline"]
    return rest, max(t.ended for t in rest) - base.ended


def executor(kind, n):
    if kind == "ray":
        from autoresearch.executors.ray import RayExecutor
        return RayExecutor(n)
    if kind == "inline":
        from autoresearch.executors.inline import InlineExecutor
        return InlineExecutor(n)
    from autoresearch.executors.local import LocalExecutor
    return LocalExecutor(n)


def scaling(args):
    print(f"\n## Scaling: {args.sleep:g} s runs, {args.trials_per_worker} trials per worker, instant agent")
    print("keeps rare: knobs start at 2.9 (a random value beats that ~3% of the time): pure orchestration;")
    print("keeps frequent: knobs start at 1.0 (most changes improve): stale candidates are re-based and run again")
    print("| executor | keeps | workers | trials | runs | wall s | trials/h | x N=1 | goal 0.9N | runs/h | busy/slot "
          "| kept | re-based | re-run | conflicts |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for kind in args.executors:
        if kind == "ray":
            import ray
            ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False)
        for label, start in (("rare", 2.9), ("frequent", 1.0)):
            if label not in args.keeps:
                continue
            one = None
            for n in args.workers:
                s = study(args.sleep, seed=n, start=start)
                s.optimize(max_trials=args.trials_per_worker * n, executor=executor(kind, n))
                rest, wall = window(s.trials)
                reruns = sum(1 for t in rest for x in t.extra.get("stale", []) if x["values"])
                runs = sum(1 for t in rest if t.commit) + reruns
                run_s = sum(t.seconds for t in rest)
                tph = len(rest) / wall * 3600
                one = one or tph
                print(f"| {kind} | {label} | {n} | {len(rest)} | {runs} | {wall:.1f} | {tph:.0f} | {tph / one:.2f} "
                      f"| {0.9 * n:.1f} | {runs / wall * 3600:.0f} | {run_s / (wall * n):.3f} "
                      f"| {sum(t.state.value == 'keep' for t in rest)} | {sum(t.extra.get('rebased', False) for t in rest)} "
                      f"| {reruns} | {sum('conflicted' in t.reason for t in rest)} |", flush=True)
        if kind == "ray":
            ray.shutdown()


def latency(args):
    delay = args.delay * args.sleep
    print(f"\n## Agent latency: 1 worker, {args.sleep:g} s runs, agent {delay:.2f} s per proposal, "
          f"{args.latency_trials} trials")
    print("| loop | wall s | run s | busy | goal |")
    print("|---|---|---|---|---|")
    for label, pipeline in (("one slot, not pipelined", False), ("one slot, pipelined", True)):
        s = study(args.sleep, delay, seed=7)
        s.config = s.config.replace(pipeline=pipeline)
        s.optimize(max_trials=args.latency_trials, executor=executor("inline", 1))
        rest, wall = window(s.trials)
        run_s = sum(t.seconds for t in rest)
        print(f"| {label} | {wall:.1f} | {run_s:.1f} | {run_s / wall:.3f} | 0.95 |", flush=True)


def slot(args):
    """One slot: a run in a thread of the driver (inline) or in a worker process (local)."""
    print(f"\n## One slot: inline (a thread) vs a worker process, {args.sleep:g} s runs, "
          f"{args.latency_trials} trials, instant agent")
    print("| executor | wall s | run s | wall per trial s | overhead per trial s |")
    print("|---|---|---|---|---|")
    for kind in ("inline", "local"):
        s = study(args.sleep, 0.0, seed=3, start=2.9)
        s.optimize(max_trials=args.latency_trials, executor=executor(kind, 1))
        rest, wall = window(s.trials)
        run_s = sum(t.seconds for t in rest)
        print(f"| {kind} | {wall:.1f} | {run_s:.1f} | {wall / len(rest):.3f} | {(wall - len(rest) * args.sleep) / len(rest):.3f} |",
              flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=["all", "scaling", "latency", "slot"], default="all")
    p.add_argument("--sleep", type=float, default=2.0, help="seconds of 'training' per run")
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--executors", default="local")
    p.add_argument("--trials-per-worker", type=int, default=8)
    p.add_argument("--keeps", default="rare,frequent", help="scaling scenarios: rare, frequent or both")
    p.add_argument("--delay", type=float, default=0.3, help="agent latency, as a fraction of --sleep")
    p.add_argument("--latency-trials", type=int, default=10)
    args = p.parse_args()
    args.workers = [int(x) for x in args.workers.split(",")]
    args.executors = args.executors.split(",")
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    if args.part in ("all", "scaling"):
        scaling(args)
    if args.part in ("all", "latency"):
        latency(args)
    if args.part in ("all", "slot"):
        slot(args)


if __name__ == "__main__":
    main()
