"""Loop overhead: of the wall time a study spends after its baseline, how much is training?

    python benchmarks/loop_overhead.py                      # cpu profile, 60 s budget, 4 trials
    python benchmarks/loop_overhead.py --budget 20 --trials 3
    python benchmarks/loop_overhead.py --budget 20 --trials 3 --sandbox none   # the same, no bubblewrap

Prints, per trial, wall seconds (agent + start-up + training + eval + re-scoring + git + ledger)
beside the training seconds the harness reported, and the fraction of wall time spent
training. Goal: >= 0.97. Upstream's reference, for comparison: about 26 s of start-up and eval
per 300 s run before any agent time (0.92 at best).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import workspace  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--budget", type=float, default=None, help="override the profile's TIME_BUDGET (s)")
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--warm", action="store_true", default=None, help="preload torch in spare interpreters")
    ap.add_argument("--no-warm", dest="warm", action="store_false", help="every command starts a fresh interpreter")
    ap.add_argument("--baseline-runs", type=int, default=3, help="as a study's default: the judge's noise estimate")
    ap.add_argument("--sandbox", default="auto", choices=["auto", "bwrap", "none"], help="the run sandbox")
    args = ap.parse_args()

    from autoresearch.config import Config
    from autoresearch.study import Study

    # a loaded machine's long steps may carry training past a short budget's allowance: the overhead
    # is what this measures, so a run may overrun by up to half the budget and still count
    ws = workspace(args.profile, args.budget, warm=args.warm, overrun=0.5 * (args.budget or 0) or None)
    study = Study(ws, agent="builtin", config=Config.load({"baseline_runs": args.baseline_runs,
                                                           "sandbox": args.sandbox}, environ={}))
    study.optimize(max_trials=0)                         # the baseline (also warms torch.compile's cache)
    t0 = time.time()
    study.optimize(max_trials=args.trials)
    wall = time.time() - t0
    trials = [t for t in study.trials if t.kind == "trial"]
    print(f"\nprofile {args.profile}, budget {study.harness.budget:g} s, {len(trials)} trials, builtin agent, "
          f"sandbox {study.sandbox.kind}")
    print(f"{'#':>3} {'state':8} {'wall s':>7} {'run s':>7} {'train s':>8} {'score s':>8} {'agent s':>8}  description")
    for t in trials:
        print(f"{t.number:>3} {t.state.value:8} {t.ended - t.started:7.1f} {t.seconds:7.1f} {t.training_seconds:8.1f} "
              f"{score_seconds(ws.root, t):8.1f} {t.agent_seconds:8.2f}  {t.description}")
    training = sum(t.training_seconds for t in trials)
    print(f"\nwall {wall:.1f} s, training {training:.1f} s, overhead {(wall - training) / max(1, len(trials)):.1f} s "
          f"per trial = {(wall - training) / max(1, len(trials)) / study.harness.budget:.1%} of the budget")
    print(f"fraction of wall time training: {training / wall:.3f}  (goal >= 0.97; upstream ~0.92 before agent time)")


def score_seconds(root, trial) -> float:
    """Wall seconds of the trial's protected re-scores, from their logs' timestamps (start to last write)."""
    total = 0.0
    for log in Path(root).glob(f".autoresearch/logs/{trial.tag}-{trial.number}*.score.log"):
        run = log.with_name(log.name.replace(".score.log", ".log"))
        if run.exists():
            total += max(0.0, log.stat().st_mtime - run.stat().st_mtime)
    return total


if __name__ == "__main__":
    main()
