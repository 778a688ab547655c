"""The real response of the GPT harness to each [search] knob, one at a time, measured through the
real loop (git, sandboxed runs, the protected re-score): the baseline k times, then each knob set to
a few values across its range (everything else at the profile's defaults), each point `--repeats`
times. Nothing is kept (the judge's sigma is set out of reach), so every point is measured against
the same baseline. The printed table gives, per point, the mean change of val_bpb against the
baseline's mean, in %, with the noise sd beside it; `--out FILE` writes it as JSON, which
`benchmarks/search.py --surface FILE` turns into a measured surrogate surface.

    python benchmarks/landscape.py --profile smoke --repeats 2 --out landscape-smoke.json

Why: benchmarks/search.py's made-up surface ranked the search strategies differently from real
training (the builtin agent ahead there, random search ahead on the smoke profile). A surface
measured on the real harness, one knob at a time, is cheap to search many times over; how well it
predicts real training (it ignores interactions between knobs) is for the real runs to say.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from autoresearch import knobs  # noqa: E402
from autoresearch.agents import Agent, Proposal  # noqa: E402


def points(default, lo, hi, scale) -> list:
    """The values tried for one knob: its range's quarter points (linear), x/÷ 2 and 4 (log), +-1, +-2 (int)."""
    if scale == "int":
        out = [default + d for d in (-2, -1, 1, 2)]
    elif scale == "log":
        out = [default * f for f in (0.25, 0.5, 2.0, 4.0)]
    else:
        out = [lo + q * (hi - lo) for q in (0.0, 0.25, 0.5, 0.75, 1.0)]
    out = [min(max(v, lo), hi) for v in out]
    out = [round(v, 6) if isinstance(v, float) else v for v in out]
    return sorted({v for v in out if v != default})


class SweepAgent(Agent):
    """Proposes the plan's points in order, each on the baseline's code (nothing is ever kept)."""
    name = "sweep"

    def __init__(self, plan):
        self.plan = list(plan)

    def propose(self, context):
        i = len([t for t in context.history if t.kind != "baseline"])
        if i >= len(self.plan):
            return Proposal("", invalid="sweep done")
        name, value, rep = self.plan[i]
        text = knobs.rewrite(context.files["train.py"], {name: value}) + f"# sweep repeat {rep}\n"
        (context.root / "train.py").write_text(text)
        return Proposal(f"{name} -> {knobs.format_value(value)} (repeat {rep})", extra={"sweep": [name, value]})


def main(argv=None) -> int:
    from autoresearch.config import Config
    from autoresearch.harness import DEFAULT_SEARCH, Harness
    from autoresearch.judge import Judge
    from autoresearch.study import Study
    from common import workspace
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--baseline-runs", type=int, default=4)
    ap.add_argument("--knobs", default="", help="comma-separated subset (default: every [search] knob)")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    os.environ.setdefault("AUTORESEARCH_EMBEDDED_LIMIT", "1500")
    print("command: python benchmarks/landscape.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])))
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="autoresearch-landscape-") as tmp:
        root = workspace(args.profile, root=tmp, tag="sweep").root
        found = {k: v.value for k, v in knobs.find((root / "train.py").read_text()).items()}
        wanted = [k for k in args.knobs.split(",") if k] or [k for k in DEFAULT_SEARCH if k in found]
        plan = [(k, v, r) for k in wanted for v in points(found[k], *DEFAULT_SEARCH[k]) for r in range(args.repeats)]
        print(f"profile {args.profile}: {len(wanted)} knobs, {len(plan)} runs + {args.baseline_runs} baseline runs; "
              f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
        table = dict(Harness.load(root).section("study"))
        table.update(baseline_runs=args.baseline_runs, sigma=1e9, confirm_band=0.0, max_repeats=1, rerun_best=False)
        study = Study(root, tag="sweep", agent=SweepAgent(plan), config=Config.load(table, environ={}))
        study.optimize(max_trials=len(plan))
        base = list(study.trials[0].values)
        groups: dict = {}
        for t in study.trials[1:]:
            name, value = (t.extra.get("agent") or {}).get("sweep") or (None, None)
            if name is None or t.value is None:
                continue
            groups.setdefault((name, value), []).append(t.value)
    mean = statistics.fmean(base)
    pairs = [v for vs in groups.values() if len(vs) > 1 for v in vs]
    pooled = Judge()
    pooled.fit([base, *groups.values()])          # the judge's own pooled sd of repeats
    sd, dof = pooled.sd, pooled.dof
    diffs = sorted(abs(vs[0] - vs[1]) for vs in groups.values() if len(vs) == 2)
    robust = statistics.median(diffs) / 0.6745 / math.sqrt(2) if diffs else 0.0   # sd from the median pair gap
    far = [g for g in diffs if g > 4 * robust]          # a pair this far apart holds a run far off (one of its two)
    print(f"\nbaseline val_bpb {mean:.4f} ({', '.join(f'{v:.4f}' for v in base)}); pooled noise sd {sd:.4f} "
          f"({100 * sd / mean:.2f}%, {dof} dof, {len(pairs)} repeated point runs); from the median gap between a point's "
          f"two runs, {robust:.4f}: the pooled sd is large when a few runs are far off (a run slowed down trains less)")
    out = {"profile": args.profile, "baseline": base, "noise_sd": sd, "robust_sd": robust,
           "outlier_rate": len(far) / (2 * len(diffs)) if diffs else 0.0, "outlier_mean": statistics.fmean(far) if far else 0.0,
           "defaults": {k: found[k] for k in wanted},
           "ranges": {k: DEFAULT_SEARCH[k] for k in wanted}, "points": {}}
    for k in wanted:
        row = sorted((v, vs) for (n, v), vs in groups.items() if n == k)
        out["points"][k] = [[v, statistics.fmean(vs), len(vs), vs] for v, vs in row]
        cells = "  ".join(f"{knobs.format_value(v)}: {100 * (statistics.fmean(vs) / mean - 1):+5.1f}" for v, vs in row)
        print(f"  {k:15} (default {knobs.format_value(found[k])})  {cells}")
    print(f"total {time.monotonic() - t0:.0f} s; load average at end {os.getloadavg()[0]:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
