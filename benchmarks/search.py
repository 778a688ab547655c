"""Search strategies side by side: builtin (TPE), random search, tree search (TPE on the top-3
nodes), and the hybrid (TPE + a scripted stand-in LLM taking 30% of the trials). Each strategy runs
the same N trials on the same seeds through the real loop (git, worktrees, sandboxed runs, judge,
re-runs, re-bases); printed: the best val_bpb relative to the baseline per strategy, mean and sd
over seeds.

    python benchmarks/search.py                               # surrogate harness, 20 trials x 3 seeds (minutes)
    python benchmarks/search.py --real --trials 6 --seeds 1   # the real GPT harness, smoke profile (slow)
    python benchmarks/search.py --surface benchmarks/landscape-smoke.json   # measured by benchmarks/landscape.py
    python benchmarks/search.py --real --remeasure 5 ...     # then every final best re-measured, side by side
    python benchmarks/search.py --remeasure-saved DIR        # the final bests a --save left, re-measured

--remeasure K (real): a study's "best vs its own baseline" carries that baseline's luck and the
winner's curse of its kept value (the best is the lowest of many noisy readings), both as large as the
effects searched for. So afterwards every study's final best and the one shared baseline run K times
in one fresh workspace, in a new shuffled order each round, each round on a seed the studies never
ran; a study's figure is the median over rounds of its best's run against the baseline's run of
the same round (paired: a slow spell moves both; the seed too).

--surface FILE: the surrogate's surface is one measured on the real harness, one knob at a time
(benchmarks/landscape.py --out FILE): the baseline's mean times one plus the sum of each knob's
measured change, interpolated in its search scale; additive (no interactions). Its noise: Gaussian of
the sd the median gap between a point's two runs gives, plus, for the share of runs far off that the
sweep saw, an upward outlier (a slowed-down 3 s run trains less).

Surrogate (the default): train.py holds the GPT harness' knobs with its defaults and [search]
ranges, and prints a val_bpb from a made-up smooth surface (a bowl per knob in its search scale,
MATRIX_LR's optimum moving with DEPTH, a cliff where MATRIX_LR is far too high) plus Gaussian noise
of sd 0.006, the noise measured on the cpu profile (FACTS.md); no training, so a trial costs the
loop's own time. The surface lives in a read-only file. Its defaults sit about 0.07 bpb (3.5%) above
its optimum. Because the surface is known, the table also gives each final best's TRUE value (no
noise): the measured best is biased low (the winner's curse), the true one is not. The disturbance
check is off there (a run that computes nothing has no CPU share to judge).

The stand-in LLM knows nothing of the surface: it tries, in a seeded order, ten generic moves an
LLM proposes first (a higher or lower Muon LR, a longer cooldown, some weight decay, one more
layer...), each with a one-line reason, on the files it is given, skipping a point already tried.

--real: the GPT harness on the smoke profile (3 s budget; every trial a real run and a protected
re-score); only measured values. Measured at load 5-8 on 2 cores: a baseline of 3 and 2 trials took
230-290 s a study, so 20 x 3 x 4 would take hours: use --trials/--seeds/--strategies to fit.

Measured 2026-11-27, surrogate, 20 trials x 3 seeds, 2 cores at load average 3.3-6.5, 245 s in all
(best vs baseline, %, mean +- sd over seeds; true = the surface without noise at the final best):

    strategy   measured         true
    builtin    -2.09 +- 0.09    -1.90 +- 0.26
    random     -0.25 +- 0.43    -0.30 +- 0.52
    tree       -1.92 +- 0.35    -1.74 +- 0.20
    hybrid     -2.34 +- 0.02    -2.37 +- 0.09
    builtin - random (true): -1.59% (se over seeds 0.34%): beyond 2 se

Measured 2026-11-28, --real --trials 12 --seeds 3 --strategies builtin,random, a quiet machine (load
average 1.6-1.9, nothing else running), 1929 s in all; a smoke run's noise is about 0.015-0.02 bpb:

    builtin    -1.42 +- 1.29   (seeds: -1.73, +0.00, -2.53; 1.0 keeps, 39.3 runs a study)
    random     -2.20 +- 0.32   (seeds: -2.57, -2.04, -1.99; 1.3 keeps)
    builtin - random: +0.78% (se 0.77%): not beyond 2 se, and random ahead. The one real gain found
    here is WARMUP_RATIO 0.1-0.2 (about -1.5 to -2.5%); the builtin agent's first trials are local
    moves (+-10-25%) whose effects sit within a 3 s run's noise, while random's broad draws reach it.

Then the builtin agent's first moves were made broad (x/÷ 2-3, 30-50% of a range, towards a side
with room). Measured 2026-11-28 with them, surrogate (20 x 3, load average 0.9-1.5, 91 s): builtin
-2.70 +- 0.74 measured, -2.51 +- 0.99 true (was -2.09 / -1.90); random unchanged; builtin - random
(true) -2.21%, se 0.65%. Real, --real --trials 20 --seeds 3 --strategies builtin,random, quiet
(load average 1.4-1.8), 3098 s in all:

    builtin    -1.38 +- 1.49   (seeds: -1.19, +0.00, -2.95; 0.7 keeps, 70.7 runs a study)
    random     -4.09 +- 1.47   (seeds: -5.78, -3.29, -3.20; 1.7 keeps, 62.0 runs)
    builtin - random: +2.71% (se 1.21%): random ahead by 2.2 se (the run printed "not beyond 2 se",
    which then meant only "the builtin does not beat random"; it now says which). The broad first moves found
    WARMUP_RATIO (kept in seeds 0 and 2); after them TPE's phase chased single noisy values (seed 0:
    ADAM_BETA2 moved in 7 of its 15 trials after one lucky 2.621). Random's keeps combined
    WEIGHT_DECAY 0.22-0.36 with a second knob (FINAL_LR_FRAC 0.16, a near-zero warmup).

Measured 2026-11-28 (stop 15): the real smoke landscape one knob at a time (benchmarks/landscape.py
--profile smoke --repeats 2, 88 runs, 23 min; its output: benchmarks/landscape-smoke.json). Most runs' noise
0.018 bpb (0.7%; median gap of a point's two runs), but 4 of 15 pairs read by hand were 0.07-0.23 apart:
a run far off now and then. The largest one-knob gains: WARMUP_RATIO 0.1-0.15 (-3.2, -3.8%),
FINAL_LR_FRAC 0.1 (-2.9%); UNEMBEDDING_LR / 4 costs +11%. On that measured surface (--surface, noise
0.018 plus 15% outliers of mean 0.1), 20 trials, true values:

    builtin, 5 first moves then TPE (before)      -5.80 +- 0.44   (6 seeds; now --builtin-option screen=false)
    random                                        -5.52 +- 1.02   (10 seeds)
    builtin, every knob screened first (now)      -7.92 +- 2.63   (10 seeds): -2.39% vs random, se 0.89
    ... and a step further after each keep        -6.70 +- 2.20   (10 seeds; dropped)
    ... or fewer turns for a knob moved often     -7.12 +- 2.60   (10 seeds; dropped)

(--surface benchmarks/landscape-smoke.json --strategies builtin,random --seeds 10, 196 s.) On the
made-up surface, screening costs a little: builtin -1.93 +- 0.44 true (was -2.51 +- 0.99), random
-0.30 +- 0.52; builtin - random -1.63%, se 0.39% (20 x 3, 42 s).

Then on real training, --real --trials 20 --seeds 3 --strategies builtin,random --save DIR, quiet
(load average 0.15-1.6), 3119 s:

    builtin    -2.01 +- 1.89   (seeds: -2.29, -3.74, +0.00; 1.0 keeps, 52.7 runs a study, 412 s)
    random     -2.62 +- 0.57   (seeds: -3.02, -1.97, -2.87; 2.0 keeps, 80.7 runs, 622 s)
    builtin - random: +0.61% (se 1.14%): within 2 se (stop 14: +2.71%, se 1.21%, random ahead).
    The builtin's seed 2 kept nothing: its baseline measured 2.654 (the five other studies' 2.685-2.704),
    so every trial was judged against a lucky low mean. Each study's "best vs its own baseline" carries
    that baseline's luck, as large as the effects searched for; a fairer figure re-measures every
    study's final best and one shared baseline side by side (not done yet).

Stop 15's six final bests re-measured (--remeasure-saved, 5 rounds, 438 s): builtin (TPE) -0.58 +- 0.86
(seeds -1.56, -0.18, +0.00), random -1.94 +- 1.76 (-1.95, -0.18, -3.69); builtin - random +1.36%, se
1.13%. The builtin's -2.01% above was mostly its studies' luck.

Then the gp (agents/gp.py) became the builtin's model after screening (sampler=gp; TPE is
sampler=tpe). Surfaces, true values: measured (--surface, 10 seeds) gp -8.60 +- 3.11, TPE -7.92 +-
2.63, random -5.52 +- 1.02; made-up (3 seeds) gp -2.14 +- 0.62, TPE -1.93 +- 0.44. Real, --real
--trials 20 --seeds 3 --strategies builtin,random --save DIR, quiet (load average 1.2-1.6), 2613 s,
pruning on (the default since stop 16; the studies above had none):

    builtin    -2.33 +- 0.97   (seeds: -3.40, -1.53, -2.05; 1.3 keeps, 71.3 runs a study, 532 s)
    random     -3.37 +- 1.29   (seeds: -4.76, -3.15, -2.20; 2.3 keeps, 44.7 runs, 333 s)

and every final best of this run and of stop 15's re-measured together (--remeasure-saved on one
folder, 5 rounds, 60 runs, 862 s; random-1x are stop 15's random studies, tpe its builtin ones):

    builtin (gp)  -0.60 +- 0.43   (-0.92, -0.12, -0.77)
    random        -1.74 +- 1.02   (this run -2.96, -3.01, -1.32; stop 15's -1.59, -0.60, -0.93)
    tpe           -0.14 +- 0.68   (-0.89, +0.45, +0.00)
    builtin - random: +1.14% (se 0.49%): random ahead by more than 2 se. The re-measurement is noisy
    too (a run's sd 0.02-0.03; stop 15's random-2 read -3.69 the first time, -0.93 here).

Then the gp with screen=false (5 first moves, then the gp): --real --trials 20 --seeds 3 --strategies
builtin --builtin-option screen=false --save DIR, 722 s: -1.44 +- 0.23 as printed (1.0 keeps, 32.3 runs,
237 s a study). Re-measured in one batch with the gp's and random's bests of the run above (5 rounds,
50 runs, 733 s): gp (screened) -0.37 +- 0.34 (-0.70, -0.02, -0.38), gp without screening -0.37 +- 0.70
(-1.08, +0.33, -0.36), random -2.15 +- 0.85 (-2.67, -2.60, -1.17); builtin - random +1.78% (se 0.53%).
Screening neither helps nor hurts there; random stays ahead.

Stop 18, another machine (faster: a smoke baseline reads 2.51-2.63, not 2.69; noisier: the shared
baseline's re-measured sd 0.063). On real training half and more of the trials are pruned, and the gp
had been blind to them (SCALAR_LR 2.0 proposed four times in one study, each pruned). Pruned trials now
enter its fit 2 noise sds behind the best (-o pruned_behind). Variants tried first on surfaces (true
values, 10 seeds; --surface-base 2.70 sets the defaults' value to the studies' typical baseline instead
of the sweep's high 2.719, so fewer moves are gains): random -3.48 +- 1.07 there; gp with EI after
screening (the default) -4.08 +- 1.96; Thompson sampling -3.59 (-4.36 screened); UCB kappa 1 -4.56
(screened -4.29, kappa 0.5 -3.70, kappa 2 -3.57); half random draws + the model's mean -4.55; a
confidence gate (LCB > 0, else random) -3.49, i.e. random. None beat the default beyond the noise on the
three surfaces (measured: EI -8.60, UCB1 -7.02, TS -7.97; made-up, 5 seeds: EI -2.28, UCB1 -1.73), so
the default stayed and the variants were dropped (commit efc888c has them). Real, --real --trials 20
--seeds 4 --strategies builtin,random --save DIR (2484 s), then --remeasure-saved DIR (5 rounds, 326 s):

    builtin    -2.51 +- 3.00 as printed   re-measured -1.69 +- 1.96   (-3.54, +0.00, -3.23, +0.00)
    random     -2.86 +- 1.62              re-measured -1.36 +- 0.78   (-1.11, -2.49, -1.08, -0.74)
    builtin - random (re-measured): -0.33% (se 1.05%): the builtin ahead, within the noise.

Two builtin studies kept nothing (seed 1 measured WARMUP_RATIO 0.0998 at -2.6% and discarded it).

Tree vs builtin over 10 seeds (paired, true): -0.20% +- 0.17 se, tree better in 5, worse in 4;
38.4 runs against 35.1. Builtin with 24 trials (40.8 runs): tree - builtin -0.03% +- 0.28.

Stop 19 (2026-11-28): the smoke runs' noise, taken apart. Two threads on two cores made a 3 s run's
steps swing 186-261 (the smoke profile now runs one thread: 201-217); --real had run on the first 1500
embedded documents, where val_bpb swings 3x as much between seeds (sd 0.033 against 0.011: it now
uses the whole corpus); every run repeated one seed, so repeats measured timing alone (every run now
has a seed of its own); and pruning at 1 sd with eight looks stopped most trials (now 2 sds, a 2%
floor). Real, --real --trials 20 --seeds 4 --strategies builtin,random --save DIR --remeasure 5
(2669 s): the baseline's noise sd 0.010-0.019 (0.4-0.7%), and near the defaults there is little to
find: single moves land within +-1%, the best finds are FINAL_LR_FRAC 0.14-0.16 with WEIGHT_DECAY.

    builtin    -0.59 +- 0.75 as printed   re-measured +0.00 +- 0.36   (+0.00, +0.00, -0.44, +0.44)
    random     -0.98 +- 0.67              re-measured -0.24 +- 0.30   (+0.00, +0.03, -0.44, -0.54)
    builtin - random (re-measured): +0.24% (se 0.23%): within the noise, and both near zero.

With the noise down to 0.5% and nothing much left to find near the defaults, this benchmark no longer
tells strategies apart; a real study from detuned defaults (room for several % of gain) would.

Stop 20: --start UNEMBEDDING_LR=0.001,EMBEDDING_LR=0.1,MATRIX_LR=0.008,ADAM_BETA1=0.95 (+7.1% against
the defaults, 3 paired runs), --real --trials 20 --seeds 4, as printed: builtin -2.08 +- 2.37 (seed 0
kept nothing: its coin sent three detuned knobs further out), random -2.68 +- 1.23; then first moves
towards the middle of a range for a knob in an outer 40% of it: builtin -5.99 +- 2.30 (-3.01, -6.10,
-6.24, -8.63; 2347 s). All twelve bests re-measured side by side (--remeasure-saved, 5 rounds, one
shared detuned baseline, sd 0.0197; 658 s): builtin -4.82 +- 1.10 (-3.28, -5.40, -4.82, -5.79), random
-1.43 +- 1.39 (-1.92, -2.37, -2.06, +0.65), the coin -1.73 +- 2.32; builtin - random -3.40% (se 0.89%):
beyond 2 se. A second start, chosen after the rule, knobs at the other ends (stop 21): --start
MATRIX_LR=0.15,WARMDOWN_RATIO=0.1,EMBEDDING_LR=1.8 (+5.6%), --real --trials 20 --seeds 3, 2166 s; as
printed builtin -4.73 +- 2.78, random -6.22 +- 0.83; re-measured (5 rounds, baseline sd 0.0102, 377 s):
builtin -3.86 +- 1.68 (-3.84, -5.55, -2.19), random -6.20 +- 0.26 (-6.14, -6.49, -5.97); random ahead
by 2.34% (se 0.98%). The builtin beats random on one detuned start of two.

Stop 22: the builtin's pattern move (after a keep, its step once more; -o extend=false: off), new
studies re-measured beside the earlier stops' saved bests (--remeasure-saved on one folder holding
them all as STRATEGY-SEED.best.py; 5 rounds, one shared baseline per start):
    start 1 (--seeds 3, 1547 s; re-measured in 622 s, baseline sd 0.0082):
        builtin, pattern move -6.26 +- 1.16 (-7.45, -6.20, -5.13); before it -5.15 +- 1.13 (4 seeds);
        random -1.07 +- 0.78 (4); builtin - random -5.19% (se 0.78%)
    start 2 (--seeds 3, 1291 s; re-measured in 527 s, baseline sd 0.0133):
        builtin, pattern move -5.78 +- 0.83 (-5.41, -5.21, -6.73); before it -5.07 +- 2.09 (3 seeds);
        random -6.64 +- 0.47 (3); builtin - random +0.86% (se 0.55%): within the noise (was 2.34%)
The pattern move took the builtin further on both starts (-1.1% and -0.7% against its earlier bests
in the same rounds, each within their spread). On start 2 it extended WARMDOWN_RATIO 0.38-0.42 to
0.65-0.74 in two studies: no gain (0.65 lost 1.6% after MATRIX_LR had come down to 0.05), so the far
end was not what random had over it; random's bests there combine WEIGHT_DECAY 0.33-0.37 with a long
warmdown and FINAL_LR_FRAC 0.12-0.18 at the start's MATRIX_LR 0.15: another basin, reached by its
two-knob draws across whole ranges.
    start 3, held out (--start UNEMBEDDING_LR=0.03,WARMUP_RATIO=0.2,ADAM_BETA2=0.999,SCALAR_LR=0.05,
    +3.4% by 3 paired rounds: less room), --strategies builtin,random --seeds 3, 2214 s; as printed
    builtin -2.06 +- 0.48, random -1.80 +- 0.14; re-measured (378 s, baseline sd 0.0297): builtin
    -2.15 +- 0.83 (-2.57, -2.69, -1.20), random -1.42 +- 0.79 (-1.07, -0.88, -2.32); builtin - random
    -0.73% (se 0.66%)
Over the three starts builtin - random averages -1.69% (se 0.39%): the builtin is ahead beyond the
noise on average and on start 1, within it on starts 2 and 3, and behind beyond it on none.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autoresearch import knobs  # noqa: E402
from autoresearch.cli import _options  # noqa: E402
from autoresearch.agents import Agent, Proposal  # noqa: E402

# ---------------------------------------------------------------- the surrogate harness
SEARCH = {  # the GPT harness' [search] ranges (autoresearch/harness), its defaults beside
    "MATRIX_LR": ([0.005, 0.2, "log"], 0.04), "EMBEDDING_LR": ([0.05, 2.0, "log"], 0.6),
    "UNEMBEDDING_LR": ([0.0005, 0.05, "log"], 0.004), "SCALAR_LR": ([0.05, 2.0, "log"], 0.5),
    "WEIGHT_DECAY": ([0.0, 0.4, "linear"], 0.0), "WARMUP_RATIO": ([0.0, 0.2, "linear"], 0.0),
    "WARMDOWN_RATIO": ([0.1, 0.9, "linear"], 0.5), "FINAL_LR_FRAC": ([0.0, 0.2, "linear"], 0.0),
    "ADAM_BETA1": ([0.7, 0.95, "linear"], 0.8), "ADAM_BETA2": ([0.9, 0.999, "linear"], 0.95),
    "DEPTH": ([1, 6, "int"], 2),
}

SURFACE = '''\
"""Read-only: the made-up response surface of benchmarks/search.py and its measurement noise."""
import math, os, random
NOISE_SD = {noise}
BASE = 1.90
# name: (optimum, width in the knob's search scale, bpb per width squared, log scale)
TERMS = {"MATRIX_LR": (0.08, math.log(2), 0.020, True), "EMBEDDING_LR": (0.9, math.log(2), 0.006, True),
         "UNEMBEDDING_LR": (0.008, math.log(2), 0.010, True), "SCALAR_LR": (0.5, math.log(2), 0.002, True),
         "WEIGHT_DECAY": (0.1, 0.1, 0.004, False), "WARMUP_RATIO": (0.02, 0.05, 0.002, False),
         "WARMDOWN_RATIO": (0.7, 0.2, 0.008, False), "FINAL_LR_FRAC": (0.05, 0.05, 0.002, False),
         "ADAM_BETA1": (0.85, 0.05, 0.002, False), "ADAM_BETA2": (0.97, 0.03, 0.002, False),
         "DEPTH": (3, 1.0, 0.015, False)}

def truth(k):
    """The noise-free val_bpb of knob values k."""
    total = BASE
    for name, (opt, width, weight, log) in TERMS.items():
        x = k[name]
        if name == "MATRIX_LR":
            opt = opt * math.sqrt(3 / max(k["DEPTH"], 1))     # deeper models want a lower Muon LR
        d = math.log(max(x, 1e-12) / opt) if log else x - opt
        total += weight * (d / width) ** 2
    if k["MATRIX_LR"] > 4 * TERMS["MATRIX_LR"][0]:
        total += 1.0                                          # diverges
    return total

def measure(k):
    """truth plus noise; each run (its scratch folder's name: tag-n, tag-n.1, tag-n.best1) draws its own."""
    run = os.path.basename(os.path.dirname(os.environ.get("AUTORESEARCH_MODEL_OUT", "x/x")))
    return truth(k) + random.Random(f"{SEED}/{run}").gauss(0, NOISE_SD)
'''

MEASURED = '''\
"""Read-only: benchmarks/search.py's surface measured on the real harness (benchmarks/landscape.py):
val_bpb = the baseline's mean x (1 + the sum over knobs of each knob's measured change, interpolated
in its search scale), plus Gaussian noise of the measured sd and, as often as the sweep saw one, an
upward outlier. Additive: it knows no interactions."""
import bisect, math, os, random
DATA = {data}
NOISE_SD = DATA.get("robust_sd") or DATA["noise_sd"]      # most runs' noise
OUTLIERS = DATA.get("outlier_rate", 0.0), DATA.get("outlier_mean", 0.0)   # and now and then a run far worse
BASE = DATA.get("base") or sum(DATA["baseline"]) / len(DATA["baseline"])   # the defaults' value

def _curve(name):
    lo, hi, scale = DATA["ranges"][name]
    pts = sorted([(DATA["defaults"][name], BASE)] + [(p[0], p[1]) for p in DATA["points"][name]])   # (value, mean)
    tr = (lambda v: math.log(max(v, 1e-12))) if scale == "log" else float
    return [tr(v) for v, _ in pts], [m / BASE - 1 for _, m in pts], tr

CURVES = {{n: _curve(n) for n in DATA["points"]}}

def truth(k):
    total = 0.0
    for name, (xs, ys, tr) in CURVES.items():
        x = min(max(tr(k[name]), xs[0]), xs[-1])
        i = min(max(bisect.bisect_left(xs, x), 1), len(xs) - 1)
        w = (x - xs[i - 1]) / ((xs[i] - xs[i - 1]) or 1)
        total += ys[i - 1] + w * (ys[i] - ys[i - 1])
    return BASE * (1 + total)

def measure(k):
    run = os.path.basename(os.path.dirname(os.environ.get("AUTORESEARCH_MODEL_OUT", "x/x")))
    rng = random.Random(f"{{SEED}}/{{run}}")
    return truth(k) + rng.gauss(0, NOISE_SD) + (rng.expovariate(1 / OUTLIERS[1]) if rng.random() < OUTLIERS[0] else 0.0)
'''

TRAIN = '''\
"""Surrogate train.py (benchmarks/search.py): the GPT harness' knobs; val_bpb from surface.py, no training."""
{constants}
import surface
print("---")
print(f"val_bpb: {{surface.measure(globals()):.6f}}")
print("training_seconds: 0.0")
'''

TOML = '''\
[harness]
editable = ["train.py"]
readonly = ["surface.py"]
run = "python train.py"
metric = "val_bpb"
direction = "minimize"
budget = 1

[study]
baseline_runs = 3
disturbed_below = 0.0

[search]
{search}
'''


def surrogate_workspace(root: Path, seed: int, tag: str, noise: float = 0.006, measured: dict | None = None) -> Path:
    from autoresearch.workspace import init
    root.mkdir(parents=True)
    defaults = measured["defaults"] if measured else {n: d for n, (_, d) in SEARCH.items()}
    consts = "\n".join(f"{n} = {defaults[n]!r}  # knob" for n in SEARCH)
    (root / "train.py").write_text(TRAIN.format(constants=consts))
    surface = MEASURED.format(data=repr(measured)) if measured else SURFACE.replace("{noise}", repr(noise))
    (root / "surface.py").write_text(surface + f"SEED = {seed}\n")
    (root / "program.md").write_text("Lower val_bpb by tuning the constants of train.py.\n")
    search = "\n".join(f"{n} = [{r[0]}, {r[1]}, \"{r[2]}\"]" for n, (r, _) in SEARCH.items())
    (root / "autoresearch.toml").write_text(TOML.format(search=search))
    init(root, tag=tag)
    return root


def truth_of(root: Path, text: str) -> float:
    ns: dict = {}
    exec(compile((root / "surface.py").read_text(), "surface.py", "exec"), ns)
    found = {k: v.value for k, v in knobs.find(text).items()}
    return ns["truth"](found)


# ---------------------------------------------------------------- the stand-in LLM
MOVES = [
    ("MATRIX_LR", "x", 1.5, "Muon usually tolerates a higher learning rate at this size"),
    ("MATRIX_LR", "x", 0.67, "a lower Muon learning rate may train more stably"),
    ("WARMDOWN_RATIO", "=", 0.7, "a longer cooldown usually helps short runs"),
    ("WEIGHT_DECAY", "=", 0.1, "a little weight decay regularises the matrices"),
    ("UNEMBEDDING_LR", "x", 2.0, "the output head's learning rate looks low for this width"),
    ("EMBEDDING_LR", "x", 1.5, "embeddings can learn faster"),
    ("DEPTH", "+", 1, "one more layer may pay for its time"),
    ("WARMUP_RATIO", "=", 0.05, "a short warmup avoids early instability"),
    ("ADAM_BETA2", "=", 0.99, "a higher beta2 smooths the AdamW updates"),
    ("FINAL_LR_FRAC", "=", 0.1, "not decaying the learning rate all the way to zero"),
]


class StandInLLM(Agent):
    """Plausible generic edits in a seeded order, one per call, never a point already tried."""
    name = "standin"

    def propose(self, context):
        text = context.files["train.py"]
        found = {k: v.value for k, v in knobs.find(text).items()}
        tried = {tuple(sorted((t.extra or {}).get("knobs", {}).items())) for t in context.history}
        order = list(MOVES)
        random.Random(f"standin/{context.seed}").shuffle(order)
        for name, op, arg, why in order:
            if name not in found:
                continue
            old = found[name]
            new = old * arg if op == "x" else old + arg if op == "+" else arg
            new = round(new, 6) if isinstance(new, float) else new
            point = tuple(sorted(dict(found, **{name: new}).items()))
            if new == old or point in tried:
                continue
            (context.root / "train.py").write_text(knobs.rewrite(text, {name: new}))
            return Proposal(f"{name} {knobs.format_value(old)} -> {knobs.format_value(new)}", extra={"why": why})
        return Proposal("", invalid="the stand-in has no untried move left")


# ---------------------------------------------------------------- strategies
def agent_for(strategy: str, builtin_options: dict | None = None):
    from autoresearch.agents.builtin import BuiltinAgent
    from autoresearch.agents.hybrid import HybridAgent
    if strategy == "random":
        return BuiltinAgent(sampler="random")
    if strategy == "hybrid":
        return HybridAgent(BuiltinAgent(), StandInLLM(), llm_share=0.3)
    return BuiltinAgent(**(builtin_options or {}))


STRATEGIES = ("builtin", "random", "tree", "hybrid")


def start_values(spec: str, text: str, flag: str = "--start") -> dict:
    """NAME=VALUE,... (the flag's value): knob values of train.py's text, each of its knob's type; a clear error
    otherwise."""
    found = knobs.find(text)
    out = {}
    for item in filter(None, (i.strip() for i in spec.split(","))):
        name, eq, value = item.partition("=")
        if not eq or name not in found:
            raise SystemExit(f"{flag} {item!r}: write NAME=VALUE with NAME one of train.py's knobs "
                             f"({', '.join(sorted(found))})")
        try:
            out[name] = type(found[name].value)(value)
        except ValueError:
            raise SystemExit(f"{flag} {item!r}: {name} is a {type(found[name].value).__name__}") from None
    return out


def detune(ws, start: dict) -> None:
    """The study starts from train.py with these knob values (committed before its baseline is measured)."""
    if start:
        train = ws.root / "train.py"
        train.write_text(knobs.rewrite(train.read_text(), start))
        ws.commit("the benchmark's start: " + ", ".join(f"{k}={knobs.format_value(v)}" for k, v in start.items()),
                  ["train.py"])


def one(strategy: str, seed: int, trials: int, real: bool, tmp: Path, noise: float = 0.006,
        measured: dict | None = None, save: str = "", builtin_options: dict | None = None,
        start: dict | None = None) -> dict:
    from autoresearch.config import Config
    from autoresearch.study import Study
    from autoresearch.workspace import Workspace
    tag = f"{strategy}-{seed}"
    if real:
        from benchmarks.common import workspace
        root = workspace("smoke", root=str(tmp / tag), tag=tag).root
    else:
        root = surrogate_workspace(tmp / tag / "ws", seed, tag, noise, measured)
    if start:
        detune(Workspace(root, tag=tag), start)
    from autoresearch.harness import Harness
    table = dict(Harness.load(root).section("study"))
    table.update(seed=seed, search="tree" if strategy == "tree" else "greedy", tree_k=3)
    t0 = time.monotonic()
    study = Study(root, tag=tag, agent=agent_for(strategy, builtin_options), config=Config.load(table, environ={}))
    study.optimize(max_trials=trials)
    wall = time.monotonic() - t0
    base = study.trials[0]
    best = study.best
    out = {"measured": 100 * (best.value / base.value - 1), "wall": wall,
           "keeps": sum(t.state.value == "keep" for t in study.trials[1:]),
           "runs": len([p for p in (root / ".autoresearch" / "logs").glob(f"{tag}-*.log") if ".holdout" not in p.name]),
           "llm": sum((t.extra.get("agent") or {}).get("by") == "llm" for t in study.trials),
           "off_best": sum(t.extra.get("improves") is not None for t in study.trials)}
    out["best_text"] = study.ws.git("show", f"{best.commit}:train.py")
    if save:
        Path(save).mkdir(parents=True, exist_ok=True)
        (Path(save) / f"{tag}.tsv").write_text((root / "results.tsv").read_text())
        (Path(save) / f"{tag}.best.py").write_text(out["best_text"])
    if not real:
        base_truth = truth_of(root, study.ws.git("show", f"{base.commit}:train.py"))
        out["true"] = 100 * (truth_of(root, out["best_text"]) / base_truth - 1)
    return out


def remeasure(ws, codes: dict, rounds: int, seed: int = 0) -> dict:
    """Each train.py text of `codes` (label -> text) run `rounds` times in the workspace ws, in a new
    shuffled order each round, so that a slow spell of the machine falls on all of them alike; each
    round on a seed of its own (AUTORESEARCH_SEED_OFFSET 100 + round, none a study's first runs had), the same for
    all: a best kept on a lucky trajectory of the studies' seeds does not carry that luck here.
    Returns label -> the values of its runs (a run that did not end with a value: None)."""
    from autoresearch.harness import Harness
    from autoresearch.measurement import checksums, measure
    harness = Harness.load(ws.root)
    sums = checksums(ws.root, harness.readonly)
    out: dict = {label: [] for label in codes}
    rng, n = random.Random(f"remeasure/{seed}"), 0
    for r in range(rounds):
        order = list(codes)
        rng.shuffle(order)
        for label in order:
            (ws.root / "train.py").write_text(codes[label])
            n += 1
            m = measure(ws.root, harness, sums, ws.root / f".autoresearch/logs/r{n}.log",
                        ws.root / f".autoresearch/models/r{n}.pt", seed_offset=100 + r)
            out[label].append(m.value if m.state.value == "keep" else None)
        print(f"  re-measure round {r + 1}/{rounds}: " + ", ".join(
            f"{label} {out[label][-1] if out[label][-1] is not None else '-'}" for label in codes), flush=True)
    return out


def remeasured_table(bests: dict, rounds: int, start: dict | None = None) -> dict:
    """bests: (strategy, seed) -> the final best's train.py. Every distinct text and the baseline's (the
    harness' own train.py, as a fresh smoke workspace has it, with --start's values) measured `rounds`
    times side by side in that workspace (remeasure()); each study's figure, in %: the median over rounds of its
    best's run against the baseline's run of the same round (paired: a slow spell of the machine moves
    both; the median: now and then a smoke run lands far off)."""
    from benchmarks.common import workspace
    ws = workspace("smoke", tag="remeasure")
    detune(ws, start or {})
    texts = {"base": (ws.root / "train.py").read_text()}
    label_of = {}
    for key, text in bests.items():
        # (rstrip: the text a study gives, through Workspace.git, has lost the file's last newline)
        label = next((k for k, t in texts.items() if t.rstrip() == text.rstrip()), None)
        if label is None:
            label = f"{key[0]}-{key[1]}"
            texts[label] = text
        label_of[key] = label
    runs = remeasure(ws, texts, rounds)
    out = {}
    for key, label in label_of.items():
        pairs = [b / a - 1 for a, b in zip(runs["base"], runs[label]) if a is not None and b is not None]
        out[key] = 100 * statistics.median(pairs) if pairs else float("nan")
    base = [v for v in runs["base"] if v is not None]
    print(f"  shared baseline: median {statistics.median(base):.4f} of {len(base)} runs "
          f"(sd {statistics.stdev(base) if len(base) > 1 else 0.0:.4f}); {sum(len(v) for v in runs.values())} runs")
    return out


def verdict(a: list, b: list, what: str) -> str:
    diff = statistics.fmean(a) - statistics.fmean(b)
    se = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
    word = ("beats random by more than 2 se" if diff < -2 * se else
            "random ahead by more than 2 se" if diff > 2 * se else "within 2 se")
    return f"builtin - random ({what}): {diff:+.2f}% (se over seeds {se:.2f}%; {word})"


def print_remeasured(again: dict) -> None:
    strategies = sorted({s for s, _ in again}, key=lambda s: STRATEGIES.index(s) if s in STRATEGIES else 99)
    print(f"{'strategy':10} {'best vs the shared baseline, % (median of rounds)':44} seeds")
    for s in strategies:
        xs = [again[k] for k in sorted(again) if k[0] == s]
        print(f"{s:10} {_ms(xs):44} {', '.join(f'{x:+.2f}' for x in xs)}")
    a = [v for (s, _), v in sorted(again.items()) if s == "builtin"]
    b = [v for (s, _), v in sorted(again.items()) if s == "random"]
    if len(a) > 1 and len(b) > 1:
        print("\n" + verdict(a, b, "re-measured"))


def remeasure_saved(folder: Path, rounds: int, argv) -> int:
    """--remeasure-saved: the final bests a --save left, re-measured beside the baseline."""
    t0 = time.monotonic()
    print("command: python benchmarks/search.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])))
    bests = {}
    for f in sorted(folder.glob("*.best.py")):
        strategy, _, seed = f.name[: -len(".best.py")].rpartition("-")
        bests[(strategy, int(seed))] = f.read_text()
    if not bests:
        print(f"{folder} holds no STRATEGY-SEED.best.py files (search.py --save writes them)", file=sys.stderr)
        return 2
    start = json.loads((folder / "start.json").read_text()) if (folder / "start.json").exists() else {}
    print(f"re-measure {len(bests)} saved final bests from {folder}, {rounds} runs each beside the baseline; "
          f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
    print_remeasured(remeasured_table(bests, rounds, start))
    print(f"total {time.monotonic() - t0:.0f} s; load average at end {os.getloadavg()[0]:.2f}")
    return 0


def _ms(xs) -> str:
    return f"{statistics.fmean(xs):+7.2f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:4.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--real", action="store_true", help="the GPT harness on the smoke profile (slow)")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--noise", type=float, default=0.006, help="the surrogate's noise sd (the cpu profile's: 0.006)")
    ap.add_argument("--builtin-option", action="append", default=[], metavar="KEY=VALUE",
                    help="an option of the builtin agent for the builtin and tree strategies, as `-o` takes it "
                         "(screen=false: the first moves before screening)")
    ap.add_argument("--save", default="", help="a folder to copy each study's results.tsv into (as STRATEGY-SEED.tsv)")
    ap.add_argument("--remeasure", type=int, default=0, metavar="K",
                    help="--real: afterwards, run every study's final best and the baseline K times side by side "
                         "in one workspace, and compare those (default 0: not)")
    ap.add_argument("--remeasure-saved", default="", metavar="DIR",
                    help="no studies: re-measure the STRATEGY-SEED.best.py files a --save left in DIR (--remeasure K times)")
    ap.add_argument("--surface", default="", help="a surface measured by benchmarks/landscape.py --out (JSON) "
                                                 "instead of the made-up one")
    ap.add_argument("--start", default="", metavar="NAME=VALUE,...",
                    help="every study (and --remeasure's baseline) starts from train.py with these knob values, "
                         "e.g. detuned defaults that leave several %% to find")
    ap.add_argument("--surface-base", type=float, default=0.0, metavar="VALUE",
                    help="--surface: the defaults' true value (default: the sweep's baseline mean); every measured "
                         "point keeps its value, so a lower base makes fewer moves gains")
    args = ap.parse_args(argv)
    strategies = [s for s in args.strategies.split(",") if s]
    bad = [s for s in strategies if s not in STRATEGIES]
    if bad:
        ap.error(f"unknown strategies {bad}; known: {', '.join(STRATEGIES)}")
    # (--real ran on the first 1500 embedded documents until 2026-11-28: there the smoke profile's val_bpb
    # swings 3x as much between seeds, sd 0.033 against 0.011 on the whole corpus, one thread; the
    # tokenizer and data are prepared once per machine, so the whole corpus costs nothing per study)
    if args.remeasure_saved:
        return remeasure_saved(Path(args.remeasure_saved), args.remeasure or 5, argv)
    print("command: python benchmarks/search.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])))
    builtin_options = _options(args.builtin_option)
    from autoresearch.harness import _package_file
    knob_text = _package_file("train.py") if args.real else "\n".join(f"{n} = {d!r}" for n, (_, d) in SEARCH.items())
    start = start_values(args.start, knob_text)
    measured = json.loads(Path(args.surface).read_text()) if args.surface else None
    if measured and args.surface_base:
        measured["base"] = args.surface_base
    mode = ("real GPT harness, smoke profile (3 s budget)" if args.real else
            f"surface measured on the {measured['profile']} profile ({args.surface}), noise sd {measured.get('robust_sd') or measured['noise_sd']:.4f}"
            + (f", base {args.surface_base:g}" if args.surface_base else "")
            if measured else f"surrogate surface, noise sd {args.noise:g}")
    if start:
        mode += "; starting from " + ", ".join(f"{k}={knobs.format_value(v)}" for k, v in start.items())
    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)
        (Path(args.save) / "start.json").write_text(json.dumps(start))
    print(f"mode: {mode}; "
          f"{args.trials} trials x {args.seeds} seeds; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    results: dict = {s: [] for s in strategies}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="autoresearch-search-") as tmp:
        for seed in range(args.seeds):
            for s in strategies:
                r = one(s, seed, args.trials, args.real, Path(tmp), args.noise, measured, args.save, builtin_options,
                      start)
                results[s].append(r)
                print(f"  {s:8} seed {seed}: measured {r['measured']:+.2f}%"
                      + (f", true {r['true']:+.2f}%" if "true" in r else "")
                      + f", {r['keeps']} keeps, {r['runs']} runs, {r['wall']:.0f} s", flush=True)
    print()
    cols = "best vs baseline, %: measured" + ("  |  true (no noise)" if not args.real else "")
    print(f"{'strategy':10} {cols:44} keeps  runs  off-best  llm   wall s")
    for s, rs in results.items():
        cell = _ms([r["measured"] for r in rs]) + ("      |  " + _ms([r["true"] for r in rs]) if not args.real else "")
        print(f"{s:10} {cell:44} {statistics.fmean(r['keeps'] for r in rs):5.1f} {statistics.fmean(r['runs'] for r in rs):5.1f}"
              f" {statistics.fmean(r['off_best'] for r in rs):9.1f} {statistics.fmean(r['llm'] for r in rs):4.1f}"
              f" {statistics.fmean(r['wall'] for r in rs):8.0f}")
    key = "measured" if args.real else "true"
    if "builtin" in results and "random" in results and args.seeds > 1:
        print("\n" + verdict([r[key] for r in results["builtin"]], [r[key] for r in results["random"]], key))
    if args.real and args.remeasure:
        print(f"\nre-measured: every study's final best and the baseline, {args.remeasure} runs each, side by side")
        again = remeasured_table({(s, i): r["best_text"] for s, rs in results.items() for i, r in enumerate(rs)},
                                 args.remeasure, start)
        print_remeasured(again)
    print(f"total {time.monotonic() - t0:.0f} s; load average at end {os.getloadavg()[0]:.2f} "
          f"(1/5/15 min: {', '.join(f'{x:.2f}' for x in os.getloadavg())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
