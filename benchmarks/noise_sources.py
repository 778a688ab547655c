"""Where a run's noise comes from: the seed, or the machine's speed (steps done in the time budget).

    python benchmarks/noise_sources.py --budget 60 --seeds 5 --change ADAM_BETA2=0.9,MATRIX_LR=0.05

Real runs of the default harness (cpu profile), unsandboxed so that each evaluates itself. For each
seed: the defaults (A), the defaults again on the same seed (A'), then each change on that seed. The
runs of one seed follow one another, so they meet nearly the same machine. Printed:
- A across seeds: the noise a repeat of one code shows (what the judge measures);
- A' - A: the same seed and code, so only the machine's speed differs (the steps it got);
- each change - A on the same seed (paired) against two runs on different seeds (unpaired), and the
  correlation between A and the change across seeds;
- the same after taking out the steps (val_bpb less slope x steps, the slope fitted over all runs):
  what would be left if every run got the same number of steps.
Each run's line has its steps and its CPU s per wall s while it trained: a machine that is slower
per CPU second (not one whose CPU is taken) shows fewer steps at the same CPU share.
--side-by-side: A' and each change run at the same time as a run of A on the same seed, one thread each
(each pair meets the machine of the same minute), and the sd of those pairs' differences is printed.
Nothing here changes what the tool does; it prints what a study's judge could gain by pairing runs on
seeds, or by runs that do not depend on the machine's speed.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def measure_all(budget: float, seeds: int, changes: list[tuple[str, str]], save: str | None, side: bool = False):
    """side: each arm runs at the same time as a run of A on its seed, one thread each (a second workspace)."""
    import os
    import threading

    from autoresearch import knobs
    from autoresearch.measurement import measure
    from autoresearch.sandbox import detect
    from benchmarks.keep_accuracy import _workspace

    if side:        # the runs' thread count (the user's value wins over the cores the tool may use)
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    spaces = [_workspace(budget, "=".join(changes[0]) if changes else "SEED=42") for _ in range(2 if side else 1)]
    current, rows = spaces[0][6], []
    arms = [("A", {}), ("A'", {})] + [(f"{n}={v}", {n: type(current[n].value)(v)}) for n, v in changes]

    def one(k, seed, edits, stem, seeds=False):
        ws, h, sums, original = spaces[k][:4]
        (ws.root / "train.py").write_text(knobs.rewrite(original, {"SEED": seed, **edits}))
        return measure(ws.root, h, sums, ws.root / f".autoresearch/logs/{stem}.log",
                       ws.root / f".autoresearch/models/{stem}.pt", rescore=False, sandbox=detect("none"),
                       compile_cache=ws.root / ".autoresearch" / "compile-cache", seeds=seeds)

    def record(seed, label, m, pair):
        r = m.result
        cpu, _, wall, _ = r.judged
        row = dict(seed=seed, arm=label, value=m.value, steps=r.summary.get("num_steps"),
                   share=round(cpu / wall, 3) if wall else None, cold=m.cold, pair=pair)
        print(f"  seed {seed} {label:<22} val_bpb {m.value}  steps {row['steps']}  CPU s per s {row['share']}"
              f"{'' if pair is None else f'  (pair {pair})'}{'  (compiled cold: left out)' if m.cold else ''}",
              flush=True)
        if save:
            with open(save, "a") as f:
                f.write(json.dumps(row) + "\n")
        rows.append(row)

    def together(*calls):
        """The calls' results, each call run in a thread of its own, all at the same time."""
        out = [None] * len(calls)
        threads = [threading.Thread(target=lambda i, c: out.__setitem__(i, c()), args=(i, c)) for i, c in enumerate(calls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out

    # a first run in each workspace, not counted, leaves the compile cache every later one starts from, as a study's does
    together(*(lambda k=k: one(k, 999, {}, "warmup", seeds=True) for k in range(len(spaces))))
    for seed in range(seeds):
        if not side:
            for label, edits in arms:
                record(seed, label, one(0, 1000 + seed, edits, f"noise-{seed}-{len(rows)}"), None)
            continue
        for label, edits in arms[1:]:
            stem = f"noise-{seed}-{len(rows)}"
            a, b = together(lambda: one(0, 1000 + seed, {}, stem), lambda: one(1, 1000 + seed, edits, stem))
            pair = len(rows) // 2
            record(seed, "A", a, pair)
            record(seed, label, b, pair)
    return rows


def report(rows) -> None:
    rows = [r for r in rows if r["value"] is not None and r["steps"] and not r.get("cold")]
    steps, values = [r["steps"] for r in rows], [r["value"] for r in rows]
    if len(set(steps)) > 1:
        slope = statistics.linear_regression(steps, values).slope
        print(f"\nval_bpb against steps over all {len(rows)} runs: slope {slope:+.5f} per step, "
              f"correlation {statistics.correlation(steps, values):+.2f}")
    else:       # (a short budget: every run the same steps, nothing to take out)
        slope = 0.0
        print(f"\nevery run did {steps[0] if steps else 0:.0f} steps: no slope to take out")

    def adj(r):
        return r["value"] - slope * r["steps"]

    pairs = collections.defaultdict(dict)
    for r in rows:
        if r.get("pair") is not None:
            pairs[r["pair"]]["A" if r["arm"] == "A" else "other"] = r
    if pairs:       # side by side: each arm against the A that ran beside it
        diffs = collections.defaultdict(list)
        for p in pairs.values():
            if "A" in p and "other" in p:
                diffs[p["other"]["arm"]].append((p["other"]["value"] - p["A"]["value"],
                                                 p["other"]["steps"] - p["A"]["steps"]))
        for arm, d in diffs.items():
            if len(d) >= 2:
                print(f"{arm + ' - A, side by side':<32} mean {statistics.fmean(x for x, _ in d):+.4f}, sd of a difference "
                      f"{statistics.stdev(x for x, _ in d):.4f} ({len(d)} pairs; steps apart {min(s for _, s in d):+.0f} "
                      f"to {max(s for _, s in d):+.0f})")
        return
    by = collections.defaultdict(dict)      # one after the other: each arm against A on its seed
    for r in rows:
        by[r["arm"]][r["seed"]] = r
    a = by.get("A", {})
    if len(a) >= 2:
        vals = [r["value"] for r in a.values()]
        print(f"A across seeds: sd {statistics.stdev(vals):.4f} ({100 * statistics.stdev(vals) / statistics.fmean(vals):.2f}%), "
              f"at equal steps {statistics.stdev([adj(r) for r in a.values()]):.4f}; "
              f"steps {min(r['steps'] for r in a.values()):.0f}-{max(r['steps'] for r in a.values()):.0f}")
    for arm, b in by.items():
        common = sorted(set(a) & set(b)) if arm != "A" else []
        if len(common) < 2:
            continue
        d = [b[s]["value"] - a[s]["value"] for s in common]
        da = [adj(b[s]) - adj(a[s]) for s in common]
        unpaired = [b[s]["value"] - a[t]["value"] for s in common for t in common if t != s]
        rho = statistics.correlation([a[s]["value"] for s in common], [b[s]["value"] for s in common]) \
            if len(common) > 2 else float("nan")
        print(f"{arm + ' - A':<26} mean {statistics.fmean(d):+.4f}; sd of a difference: paired {statistics.stdev(d):.4f}, "
              f"unpaired {statistics.stdev(unpaired):.4f} (rho {rho:+.2f}); paired at equal steps: mean "
              f"{statistics.fmean(da):+.4f}, sd {statistics.stdev(da):.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=60.0, help="seconds of training per run (cpu profile: 60)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--change", default="ADAM_BETA2=0.9,MATRIX_LR=0.05", help="NAME=VALUE[,NAME=VALUE...]: the changes")
    ap.add_argument("--save", help="append each run as a JSON line to this file")
    ap.add_argument("--side-by-side", action="store_true",
                    help="run each arm at the same time as a run of A on its seed, one thread each")
    ap.add_argument("--load", help="report on runs saved with --save instead of running")
    args = ap.parse_args()
    if args.load:
        rows = [json.loads(line) for line in open(args.load)]
    else:
        changes = [tuple(c.split("=", 1)) for c in args.change.split(",") if c]
        print(f"cpu profile, {args.budget:g} s, {args.seeds} seeds: A, A' (A again) and {len(changes)} change(s) per seed"
              f"{', each beside a run of A (one thread each)' if args.side_by_side else ''}", flush=True)
        rows = measure_all(args.budget, args.seeds, changes, args.save, args.side_by_side)
    report(rows)


if __name__ == "__main__":
    main()
