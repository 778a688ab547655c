"""A real study on a CUDA machine: h100 profile, builtin agent, a short budget; prints the results
table, the fraction of wall time the harness trained, the GPU's mean utilisation, and the GPU
utilisation the runner recorded for each run (NVML, autoresearch/disturbance.py).

    AUTORESEARCH_CACHE=... python benchmarks/gpu_study.py --budget 20 --trials 3 [--workers 1 --executor local]
        [--hog]   # then one more trial while another process keeps the GPU busy: is it marked disturbed?

Run on the lent H100 with the prepared data carried in (see the closing note of the loop issue).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import workspace  # noqa: E402


class GpuSampler(threading.Thread):
    """nvidia-smi's utilization.gpu every 0.5 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                r = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                   capture_output=True, text=True)
            except FileNotFoundError:       # no NVIDIA GPU here
                return
            try:
                self.samples.append((time.time(), float(r.stdout.split()[0])))
            except (IndexError, ValueError):
                pass
            self.stop.wait(0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="h100")
    ap.add_argument("--budget", type=float, default=20)
    ap.add_argument("--eval-tokens", type=int, default=2097152)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--baseline-runs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--executor", default="local")
    ap.add_argument("--warm", action="store_true", default=None, help="preload torch in spare interpreters")
    ap.add_argument("--no-warm", dest="warm", action="store_false", help="every command starts a fresh interpreter")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a [study] setting, e.g. --set max_repeats=2 (bounds the runs of a short lease)")
    ap.add_argument("--hog", action="store_true", help="one more trial beside a process that keeps the GPU busy")
    args = ap.parse_args()

    from autoresearch import report
    from autoresearch.config import Config
    from autoresearch.study import Study

    ws = workspace(args.profile, args.budget, eval_tokens=args.eval_tokens, warm=args.warm)
    from autoresearch.display import Console
    extra = {k: json.loads(v) if v[:1] in "0123456789-tf[{" else v for k, v in (kv.split("=", 1) for kv in args.set)}
    cfg = Config.load({"baseline_runs": args.baseline_runs, **extra}, environ={}, workers=args.workers,
                      executor=args.executor)
    study = Study(ws, agent="builtin", config=cfg, display=Console(live=False))
    sampler = GpuSampler()
    sampler.start()
    t0 = time.time()
    study.optimize(max_trials=args.trials)
    wall = time.time() - t0
    sampler.stop.set()
    sampler.join()
    trials = study.trials
    training = sum(t.training_seconds for t in trials)
    util = [u for ts, u in sampler.samples if t0 <= ts]
    print(report.summary(trials, study.harness.metric, study.harness.direction, ws.tag, last=50))
    print(f"\nwall {wall:.0f} s, training {training:.0f} s: the harness trained {training / wall:.1%} of the wall time")
    if util:
        print(f"GPU utilisation (nvidia-smi, every 0.5 s): mean {sum(util) / len(util):.0f}%, "
              f"busy (>0%) {sum(u > 0 for u in util) / len(util):.1%} of {len(util)} samples")

    def show(trials):      # printed before the hog's trial too: a lease may end during it
        for t in trials:
            m, x = t.metrics, t.extra or {}
            print(f"trial {t.number}: {t.state.value} val_bpb {t.value} mfu {m.get('mfu_percent')} "
                  f"tok {m.get('total_tokens_M')}M steps {m.get('num_steps')} peak_vram_mb {m.get('peak_vram_mb')} "
                  f"run {t.seconds:.0f}s train {t.training_seconds:.0f}s gpu_util {x.get('gpu_util')} "
                  f"baseline gpu_utils {x.get('gpu_utils')} shared {x.get('gpu_shared')} "
                  f"disturbed_runs {x.get('disturbed_runs')} {x.get('disturbed') or ''}")

    show(trials)
    if args.hog:     # a second process on the same GPU for the whole of one more trial
        hog = subprocess.Popen([sys.executable, "-c", "import torch\na = torch.randn(8192, 8192, device='cuda', "
                                "dtype=torch.bfloat16)\nwhile True:\n    a = (a @ a).clamp_(-1, 1)"])
        hogged = Study(ws, agent="builtin", config=dataclasses.replace(cfg, disturbed_reruns=1),
                       display=Console(live=False))
        try:
            hogged.optimize(max_trials=1)
        finally:
            hog.kill()
        trials = hogged.trials
        show(trials[-1:])

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report.write(ws, study.harness, trials)
    for name in ("results.tsv", "progress.png", "report.md"):
        shutil.copy(ws.root / name, out / name)
    shutil.copy(ws.root / ".autoresearch" / ws.tag / "trials.jsonl", out / "trials.jsonl")
    logs = sorted((ws.root / ".autoresearch" / "logs").glob("*.log"))
    if logs:
        shutil.copy(logs[-1], out / "last_trial.log")


if __name__ == "__main__":
    main()
