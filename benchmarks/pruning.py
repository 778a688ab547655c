"""Pruning: trials per hour with and without it, and what it costs in keep accuracy.

    python benchmarks/pruning.py --profile cpu --budget 15 --moves 8 --runs 5

Real runs of the default harness (eager, protected re-score as in a study), each measured once
without pruning, its curve kept (autoresearch/pruning.py's Watch):
  - the baseline, `--baseline` times (the file as it is: the reference curves and their spread),
  - `--moves` candidates as the builtin agent makes its first ones (one knob of its search space
    moved x/÷ 2-3, 30-50% of its range, or +-1: its first moves; the runs measured before 2026-11-28,
    in the closing notes, had x/÷ 1.5-2 and +-10-25%), the realistic mix of a study's start, or with
    `--mix random` the random strategy's draws (every knob across its range, one or two changed),
  - A/A: `--runs` runs of the unchanged code (no better than the baseline), and
  - true gains: `--runs` runs of a known real change (--change, default MATRIX_LR=0.08).
Then the pruning rule (the study's defaults, or --sigma/--floor/--after) is replayed on every curve,
each run against the baseline's reference, as a study's first candidates are: a pruned run's wall
time is the seconds to its pruning point plus the kill's, measured on `--live` of them re-run with
pruning on (the live runs must stop at the same fraction). Trials per hour = 3600 / mean wall
seconds per trial over the moves. Keep rates: simulated studies as in keep_accuracy.py (a k-run
baseline, the judge, close calls re-run with the best beside them), each trial a draw of a real
run (its value with a small jitter: a smoothed bootstrap); with pruning a drawn run whose curve the
rule stops is a discard; re-runs are never pruned. An A/A trial draws from the pool the baseline
draws from (the unchanged code's runs). Every run is on a seed of its own, as in a study (the baseline's
on SEED + 0, 1, 2; each other run on SEED + 1000 x k: measurement.seed_offset). Both arms use the same
random seeds.
Goal: >= 1.4x trials per hour at a true-keep rate within 5 points and false keeps <= 5%.

    python benchmarks/pruning.py --study builtin --profile cpu --budget 60 --trials 20 [--start ...]

`--study STRATEGY` measures a real study instead: one study of the default harness with pruning off
(builtin, random or tree, as benchmarks/search.py makes them), every run's curve recorded, then the rule
replayed on its trials in the order they ran, each trial's first run against the reference the study
had then (the best of the moment and the baseline repeats: pruning.reference, pruning.comparable). A
trial the rule stops costs its wall seconds less its runs' (re-runs of the best beside it included),
plus its first run's seconds to the pruning point and 1 s for the kill. Trials per hour = the wall
seconds of the study's trials without / with (its baseline, the same in both, left out). Those are the proposals a study makes, later ones against a best that has
improved, where the moves above are all first steps from the baseline. Keeps lost: kept trials the
rule would have stopped (after the first one the replayed study would have gone another way).
The study runs with the futility rule off too (every close call re-run to its verdict), and the rule
(`--futility`, the study's default) is replayed on its close calls: after each of a close call's runs
its chance of a keep is worked out with the best's values and the noise of that moment; where it would have
ended the trial sooner, the runs it spares (the best's re-runs beside them too) come off its wall
seconds. It prints trials per hour with both rules, each alone, and a keep either would have lost, and
what a rule that knew each trial's verdict would give: every discard stopped at the first judged point
of its first run (the one-run trials alone, and close calls too): the most any pruning rule can save.

    python benchmarks/pruning.py --study builtin ... --rules-on --save LIVE.json --against SAVED.json

`--rules-on` runs the study as a user's runs, pruning and futility on, live: what the replay cannot see
(a pruned run's kill, its disturbance check, the proposals that follow a pruned trial) happens for real.
It prints the trials' wall seconds, trials per hour, pruned trials, runs measured again as disturbed, keeps
and the best's gain, beside a saved study of the same start and seed run with the rules off (--against).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autoresearch import pruning  # noqa: E402
from autoresearch.config import Config  # noqa: E402
from autoresearch.judge import CONFIRM, KEEP, Judge  # noqa: E402


def moves(original: str, n: int, seed: int) -> list[dict]:
    """The builtin agent's first proposals: its local moves, one knob each, the knobs taking turns."""
    from autoresearch import knobs
    from autoresearch.agents.builtin import _distribution, _local_move
    from autoresearch.harness import DEFAULT_SEARCH
    found = knobs.find(original)
    current = {k: found[k].value for k in DEFAULT_SEARCH if k in found}
    dists = {k: _distribution(k, DEFAULT_SEARCH[k], current[k]) for k in current}
    order = sorted(dists)
    random.Random(seed).shuffle(order)
    out = []
    for i in range(4 * n):          # a move that rounds back to where it started, or repeats one, is none: draw again
        point = _local_move(current, dists, random.Random(f"{seed}/{i}"), order, i)
        change = {k: v for k, v in point.items() if v != current[k]}
        if change and change not in out:
            out.append(change)
        if len(out) == n:
            break
    return out


def random_moves(original: str, n: int, seed: int) -> list[dict]:
    """The random strategy's proposals (BuiltinAgent(sampler="random"), the agent itself, with no history):
    every knob drawn across its [search] range, then one knob changed (60%) or the two drawn furthest. Its
    draws stand for a study's broad trials, the kind the builtin's model makes once screening is over."""
    import tempfile
    from autoresearch import knobs
    from autoresearch.agents import Context
    from autoresearch.agents.builtin import BuiltinAgent
    from autoresearch.harness import DEFAULT_SEARCH
    agent, current = BuiltinAgent(sampler="random"), knobs.find(original)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(4 * n):
            (Path(tmp) / "train.py").write_text(original)
            p = agent.propose(Context(root=Path(tmp), program="", files={"train.py": original},
                                      editable=("train.py",), search=DEFAULT_SEARCH, trial_number=i, seed=seed))
            change = {k: v for k, v in p.extra.get("params", {}).items() if v != current[k].value}
            if change and change not in out:
                out.append(change)
            if len(out) == n:
                break
    return out


class Runs:
    """Measures runs of edits of the workspace's train.py: value, wall seconds, curve."""

    def __init__(self, profile: str, budget: float, start: str = ""):
        from autoresearch.harness import Harness
        from autoresearch.measurement import checksums
        from benchmarks.common import workspace
        self.ws = workspace(profile, budget)
        self.h = Harness.load(self.ws.root)
        self.sums = checksums(self.ws.root, self.h.readonly)
        self.train = self.ws.root / "train.py"
        self.original = self.train.read_text()
        if start:        # --start: every run, the baseline's too, is an edit of train.py with these knob values
            from autoresearch import knobs
            from benchmarks.search import start_values
            self.original = knobs.rewrite(self.original, start_values(start, self.original))
        self.n = 0

    def run(self, label: str, edits: dict, reference=None, offset: int = 0) -> dict:
        from autoresearch import knobs
        from autoresearch.measurement import measure
        # eager: a sandboxed run's compile cache is its own empty scratch folder (see keep_accuracy.py)
        self.train.write_text(knobs.rewrite(self.original, {"COMPILE": False, **edits}))
        self.n += 1
        watch = pruning.Watch(reference)
        start = time.monotonic()
        m = watch.settle(measure(self.ws.root, self.h, self.sums, self.ws.root / f".autoresearch/logs/p{self.n}.log",
                                 self.ws.root / f".autoresearch/models/p{self.n}.pt", on_progress=watch,
                                 seed_offset=offset))
        row = {"label": label, "edits": edits, "offset": offset, "value": m.value, "state": m.state.value,
               "reason": m.reason,
               "seconds": time.monotonic() - start, "run_seconds": m.result.seconds,
               "curve": {f: (loss, s) for f, loss, s in m.curve}}
        print(f"  {label:5} {str(edits)[:50]:50} {m.state.value:8} {m.value if m.value is not None else '-'!s:10.10} "
              f"{row['seconds']:6.1f} s (run {m.result.seconds:5.1f} s)  {len(m.curve)} points"
              f"{'  ' + m.reason[:50] if m.reason else ''}", flush=True)
        return row


def pruned_at(row: dict, ref: pruning.Reference) -> float | None:
    """The fraction at which the rule stops this run's curve, or None (each point judged with the one before
    it, as the study's Optuna pruner judges them)."""
    before = None
    for f in sorted(row["curve"]):
        loss = row["curve"][f][0]
        if ref.check(f, loss, before):
            return f
        before = (f, loss)
    return None


def trial_seconds(row: dict, ref: pruning.Reference | None, kill: float) -> float:
    f = pruned_at(row, ref) if ref is not None else None
    return row["seconds"] if f is None else row["curve"][f][1] + kill


def simulate(base_pool, a_pool, b_pool, ref, rng, studies=300, trials=20, jitter=0.0, cfg=None):
    """keep_accuracy.simulate with draws of real runs; with ref, a first draw the rule stops is a discard.
    Returns (real_gain, kept) per simulated trial."""
    cfg = cfg or Config()

    def draw(pool):
        row = rng.choice(pool)
        return row, row["value"] + rng.gauss(0, jitter)
    rows = []
    for _ in range(studies):
        judge = Judge.from_config(cfg)
        base = [draw(base_pool)[1] for _ in range(cfg.baseline_runs)]
        groups = [base]
        judge.fit(groups)
        for _ in range(trials):
            real = rng.random() < 0.5
            pool = b_pool if real else a_pool
            first, value = draw(pool)
            if ref is not None and pruned_at(first, ref) is not None:
                rows.append((real, False))
                continue
            values = [value]
            while True:
                d = judge.decide(values, base)
                if d.verdict != CONFIRM:
                    break
                values.append(draw(pool)[1])
                if cfg.rerun_best and len(base) < 2 * cfg.max_repeats:
                    base.append(draw(base_pool)[1])
                judge.fit([*groups, values])
            if len(values) >= 2:
                groups.append(values)
            judge.fit(groups)
            rows.append((real, d.verdict == KEEP))
    aa = [k for r, k in rows if not r]
    gain = [k for r, k in rows if r]
    return sum(aa) / max(1, len(aa)), sum(gain) / max(1, len(gain))


def study_run(args) -> dict:
    """One real study with pruning off, in a temporary workspace; its trials (Trial.to_dict) and what the
    replay needs (the best when each ran, whether it changed only knob values)."""
    from benchmarks.common import workspace
    import tempfile
    tag = f"{args.study}-{args.seed}"
    with tempfile.TemporaryDirectory(prefix="autoresearch-prune-study-") as tmp:
        return _study(args, workspace(args.profile, args.budget, root=tmp, tag=tag), tag)


def _study(args, ws, tag: str) -> dict:
    from autoresearch.config import Config as C
    from autoresearch.harness import Harness, _package_file
    from autoresearch.study import Study
    from autoresearch.workspace import Workspace
    from benchmarks.search import agent_for, detune, start_values
    detune(Workspace(ws.root, tag=tag), start_values(args.start, _package_file("train.py")))
    table = dict(Harness.load(ws.root).section("study"))
    table.update(seed=args.seed, search="tree" if args.study == "tree" else "greedy")
    if not args.rules_on:
        table.update(prune=False, futility=0.0)
    study = Study(ws.root, tag=tag, agent=agent_for(args.study), config=C.load(table, environ={}))
    study.optimize(max_trials=args.trials)
    best_of, comparable, best = {}, {}, None    # by trial number: the best when it ran (greedy: the last keep
    for t in study.trials:                      # before it), and whether it changed only that best's knob values
        best_of[str(t.number)] = best.number if best is not None else None
        if t.kind != "baseline":
            comparable[str(t.number)] = bool(t.commit and best is not None
                                             and pruning.comparable(study, t.commit, best.commit))
        if t.state.value == "keep":
            best = t
    return {"meta": {"profile": args.profile, "budget": args.budget, "start": args.start, "study": args.study,
                     "seed": args.seed, "trials": args.trials, "live": bool(args.rules_on)},
            "trials": [t.to_dict() for t in study.trials], "best_of": best_of, "comparable": comparable}


def futility_replay(data: dict, trials: list, futility: float) -> dict:
    """The futility rule replayed on a study's close calls (run with futility 0: every close call re-run to
    its verdict): after each of a close call's runs but its last (each a confirm in the study) the judge
    works out its chance of a keep, with the best's values and the noise as they were then, and the first
    below `futility` ends it, a discard. Returns {trial number: (runs of it and of the best it would have
    spared, its runs and the best's beside it in the study)} for the trials it would have ended sooner (a
    keep among them is a keep lost)."""
    cfg = Config(futility=futility)
    reruns = {t.number: {int(k): list(v) for k, v in ((t.extra or {}).get("best_reruns") or {}).items()}
              for t in trials}
    own = {t.number: len(t.values) - sum(len(r.get(t.number, ())) for r in reruns.values()) for t in trials}
    grown = dict.fromkeys(own, 0)               # re-runs of each trial (as a best) so far
    by = {t.number: t for t in trials}
    out = {}
    for i, t in enumerate(trials):
        b = data["best_of"].get(str(t.number))
        beside = reruns[t.number].get(int(b), []) if b is not None else []
        values = list(t.values[:own[t.number]])
        if t.kind != "baseline" and b is not None and len(values) >= 2 and not (t.extra or {}).get("rebased"):
            start = list(by[int(b)].values[:own[int(b)] + grown[int(b)]])
            groups = [list(u.values[:own[u.number] + grown[u.number]]) for u in trials[:i] if u.number != int(b)]
            judge = Judge.from_config(cfg)
            for m in range(1, len(values)):      # the study re-ran it after each of these: a confirm there
                best = start + beside[:m - 1]    # (the best's group as it is then, once: study.fit_noise)
                judge.fit([g for g in groups if len(g) >= 2] + [best] + ([values[:m]] if m >= 2 else []))
                gain = statistics.fmean(best) - statistics.fmean(values[:m])
                if judge.chance(gain, m, len(best), statistics.fmean(best)) < futility:
                    out[t.number] = (len(values) - m + len(beside) - min(m - 1, len(beside)),
                                     len(values) + len(beside))
                    break
        if b is not None:
            grown[int(b)] += len(beside)
    return out


def study_replay(data: dict, sigma: float, floor: float, after: float, futility: float = 0.0, kill: float = 1.0,
                 show: bool = True, prune: bool = True) -> dict:
    """The rules replayed on a study's trials: wall seconds without and with, and the keeps they would have
    lost. prune: the pruning rule; futility (> 0): the futility rule on close calls (judge.py)."""
    from autoresearch.trial import Trial
    trials = [Trial.from_dict(d) for d in data["trials"]]
    by = {t.number: t for t in trials}
    cfg = Config(prune_sigma=sigma, prune_floor=floor, prune_after=after)
    spared = futility_replay(data, trials, futility) if futility > 0 else {}
    without = with_ = close = 0.0
    pruned, lost, cut = [], [], []
    for i, t in enumerate(trials):
        wall = t.ended - t.started
        if t.kind != "baseline":            # (the baseline's runs are the same with and without: left out)
            without += wall
        b = data["best_of"].get(str(t.number))
        first = next((c for c in (t.extra or {}).get("curves") or [] if c), None)     # its first run's curve
        ref = (pruning.reference(trials[:i], by[b], cfg) if prune and b is not None and t.kind != "baseline"
               and data["comparable"].get(str(t.number)) and first else None)
        at = pruned_at({"curve": {float(p[0]): (float(p[1]), p[2]) for p in first}}, ref) if ref else None
        if len(t.values) > 1 and t.kind != "baseline":
            close += wall
        if at is not None:
            to = next(float(p[2]) for p in first if float(p[0]) == at)
            with_ += wall - t.seconds + to + kill
            pruned.append(t)
            if t.state.value == "keep":
                lost.append(t)
        elif t.number in spared:
            runs, n = spared[t.number]
            with_ += wall - runs * t.seconds / n
            cut.append(t)
            if t.state.value == "keep":
                lost.append(t)
        else:
            with_ += wall if t.kind != "baseline" else 0.0
        if show:
            best = by[b].value if b is not None else None
            vs = f"{100 * (t.value / best - 1):+6.2f}%" if t.value is not None and best else "      -"
            what = (f"pruned at {at:.0%}" if at is not None else
                    f"{spared[t.number][0]} runs spared" if t.number in spared else "")
            print(f"  {t.number:3} {t.state.value:8} {vs} {len(t.values) or '-':>4} {wall:6.1f} s"
                  f"  {what:16} {t.description[:60]}")
    return {"without": without, "with": with_, "pruned": pruned, "lost": lost, "close": close, "cut": cut,
            "trials": len(trials), "keeps": sum(t.state.value == "keep" for t in trials[1:])}


def ceiling(trials: list, after: float, kill: float = 1.0) -> tuple[float, float]:
    """What a rule that knew the verdicts would give (trials per hour): every trial that ended a discard
    stopped at its first run's first judged point (`after`), keeps run as they did. (first runs only: the
    trials that were one run; all: close calls that ended as discards too)."""
    without = first = every = 0.0
    for t in trials:
        if t.kind == "baseline":
            continue
        wall = t.ended - t.started
        curve = next((c for c in (t.extra or {}).get("curves") or [] if c), [])
        to = next((float(p[2]) for p in curve if float(p[0]) >= after - 1e-9), None)
        cut = wall - t.seconds + to + kill if t.state.value == "discard" and to is not None else wall
        without += wall
        first += cut if len(t.values) <= 1 else wall
        every += cut
    return without / max(first, 1e-9), without / max(every, 1e-9)


def study_main(args, t0):
    if args.load:
        data = json.loads(Path(args.load).read_text())
    else:
        data = study_run(args)
        if args.save:
            Path(args.save).write_text(json.dumps(data))
    m = data["meta"]
    if m.get("live"):
        live_main(args, data, t0)
        return
    print(f"\nstudy: {m['study']}, seed {m['seed']}, {m['trials']} trials, profile {m['profile']}, budget {m['budget']:g} s"
          f"{', from ' + m['start'] if m['start'] else ''}; pruning and futility off, the rules replayed (sigma "
          f"{args.sigma:g}, floor {args.floor:g}, after {args.after:g}; futility {args.futility:g})")
    print("  (trial, state, its value vs the best it ran against (that best's mean at the study's end), its runs, "
          "wall seconds with its re-runs and the best's beside them, the rules' verdict, the change)")
    r = study_replay(data, args.sigma, args.floor, args.after, args.futility)
    from autoresearch.trial import Trial
    trials = [Trial.from_dict(d) for d in data["trials"]]
    base = trials[0]
    ref = pruning.reference([base], base, Config(prune_floor=0.0))
    pooled = pruning.reference(trials, base, Config(prune_floor=0.0))
    if ref is not None:
        print(f"\nthe baseline runs' measured spread (pooled, relative): {ref.spread():.2%} of the loss; with every "
              f"trial run more than once ({len(pooled.repeats)}) at the study's end: {pooled.spread():.2%}; the floor "
              f"{args.floor:.1%} {'is above it, so the floor sets the margin' if args.floor > pooled.spread() else 'is below it'}")
    print(f"close calls (trials re-run before their verdict): {r['close']:.0f} s of the trials' {r['without']:.0f} s "
          f"({100 * r['close'] / max(r['without'], 1e-9):.0f}%); pruning never stops re-runs, the futility rule "
          f"ends {len(r['cut'])} of them sooner")
    print(f"\n{len(r['pruned'])} of {r['trials'] - 1} trials pruned, {len(r['cut'])} close calls ended sooner; keeps: "
          f"{r['keeps']}, of which the rules would have lost {len(r['lost'])}"
          f"{' (' + ', '.join(str(t.number) for t in r['lost']) + ')' if r['lost'] else ''}")
    alone = {"pruning alone": study_replay(data, args.sigma, args.floor, args.after, 0.0, show=False),
             "futility alone": study_replay(data, args.sigma, args.floor, args.after, args.futility, show=False,
                                            prune=False)}
    for label, s in alone.items():
        print(f"  {label:15} {s['without'] / s['with']:5.2f}x  keeps lost {len(s['lost'])}")
    print("sensitivity (replayed on the same study): sigma, floor (futility as set) -> trials per hour, pruned, "
          "keeps lost")
    for sigma in (1.0, 1.5, 2.0, 3.0):
        for floor in (0.005, 0.01, 0.02, 0.03):
            s = study_replay(data, sigma, floor, args.after, args.futility, show=False)
            print(f"  sigma {sigma:g} floor {floor:<6g} {s['without'] / s['with']:5.2f}x  pruned {len(s['pruned']):2}  "
                  f"keeps lost {len(s['lost'])}")
    for futility in (0.1, 0.2, 0.3):
        s = study_replay(data, args.sigma, args.floor, args.after, futility, show=False)
        print(f"  futility {futility:g} {s['without'] / s['with']:5.2f}x  ended sooner {len(s['cut'])}  "
              f"keeps lost {len(s['lost'])}")
    first, every = ceiling(trials, args.after)
    print(f"a rule that knew the verdicts (every discard stopped at {args.after:.0%} of its first run, keeps run as "
          f"they did): {first:.2f}x stopping the one-run trials, {every:.2f}x the close calls too")
    print(f"\ntrials per hour: {r['without'] / r['with']:.2f}x  (pruning and futility; a {m['study']} study, profile "
          f"{m['profile']}, budget {m['budget']:g} s{'; from ' + m['start'] if m['start'] else ''}: {r['without']:.0f} s "
          f"of trials without, {r['with']:.0f} s with; keeps lost {len(r['lost'])} of {r['keeps']})")
    print(f"goal: >= 1.40x at a true-keep rate within 5 points and false keeps <= 5%; took "
          f"{(time.monotonic() - t0) / 60:.1f} min, load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def live_summary(data: dict) -> dict:
    """A study's trials after its baseline, as they ran: wall seconds, pruned ones, runs measured again as
    disturbed, keeps, and the best's gain over the baseline."""
    from autoresearch.trial import Trial
    trials = [Trial.from_dict(d) for d in data["trials"]]
    base, rest = trials[0], [t for t in trials if t.kind != "baseline"]
    best = min((t.value for t in trials if t.state.value == "keep" and t.value is not None), default=base.value)
    return {"n": len(rest), "wall": sum(t.ended - t.started for t in rest),
            "pruned": sum(t.reason.startswith("pruned at ") for t in rest),
            "disturbed": sum(int((t.extra or {}).get("disturbed_runs") or 0) for t in rest),
            "keeps": sum(t.state.value == "keep" for t in rest), "gain": best / base.value - 1}


def live_main(args, data, t0):
    """--rules-on: the study ran with its rules on (pruning, futility), as a user's does; beside it, with --against,
    a saved study of the same start and seed run with them off (by this script without --rules-on)."""
    m = data["meta"]
    rows = [("rules on (live)", live_summary(data))]
    if args.against:
        rows.append(("rules off (saved)", live_summary(json.loads(Path(args.against).read_text()))))
    print(f"\nstudy: {m['study']}, seed {m['seed']}, profile {m['profile']}, budget {m['budget']:g} s"
          f"{', from ' + m['start'] if m['start'] else ''}")
    print(f"{'':18} {'trials':>6} {'wall s':>7} {'s a trial':>9} {'trials/h':>8} {'pruned':>6} {'disturbed':>9} "
          f"{'keeps':>5} {'best vs baseline':>16}")
    for label, r in rows:
        print(f"{label:18} {r['n']:>6} {r['wall']:>7.0f} {r['wall'] / max(1, r['n']):>9.1f} "
              f"{3600 * r['n'] / max(r['wall'], 1e-9):>8.1f} {r['pruned']:>6} {r['disturbed']:>9} {r['keeps']:>5} "
              f"{r['gain']:>+16.2%}")
    if len(rows) == 2:
        on, off = rows[0][1], rows[1][1]
        print(f"\ntrials per hour, live: {(on['n'] / on['wall']) / (off['n'] / off['wall']):.2f}x (the two studies "
              f"drew their own trials after the first that differed; the saved one may predate changes to the tool)")
    print(f"took {(time.monotonic() - t0) / 60:.1f} min, load average now "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu", help="cpu (default) or smoke")
    ap.add_argument("--budget", type=float, default=15.0, help="seconds of training per run")
    ap.add_argument("--baseline", type=int, default=3)
    ap.add_argument("--moves", type=int, default=8, help="moves: the trials-per-hour mix")
    ap.add_argument("--mix", choices=("builtin", "random"), default="builtin",
                    help="the moves: the builtin agent's first ones (default) or the random strategy's draws")
    ap.add_argument("--runs", type=int, default=5, help="runs of A/A and of the true gain each")
    ap.add_argument("--live", type=int, default=2, help="pruned moves re-run with pruning on (the kill's cost)")
    ap.add_argument("--change", default="MATRIX_LR=0.08", help="the true gain")
    ap.add_argument("--start", default="", metavar="NAME=VALUE,...",
                    help="start from train.py with these knob values (an untuned harness: the baseline, the moves "
                         "from it and the A/A runs; --change applies on top)")
    ap.add_argument("--sigma", type=float, default=Config.prune_sigma)
    ap.add_argument("--floor", type=float, default=Config.prune_floor)
    ap.add_argument("--after", type=float, default=Config.prune_after)
    ap.add_argument("--futility", type=float, default=Config.futility, help="--study: the futility rule's "
                    "threshold replayed on the close calls (judge.py)")
    ap.add_argument("--studies", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", help="write the measured runs to this JSON file")
    ap.add_argument("--load", help="analyse the runs in this JSON file (from --save) instead of measuring")
    ap.add_argument("--study", choices=("builtin", "random", "tree"),
                    help="measure a real study of this strategy with pruning off and replay the rule on it")
    ap.add_argument("--trials", type=int, default=20, help="--study: its trials")
    ap.add_argument("--rules-on", action="store_true", help="--study: run it with the study's rules on (pruning, "
                    "futility) and report what it did, instead of replaying them on a study run without")
    ap.add_argument("--against", help="--rules-on: a saved study (--save, without --rules-on) to print beside it")
    args = ap.parse_args()
    t0 = time.monotonic()
    print(f"pruning benchmark: {'profile ' + args.profile + ', budget ' + format(args.budget, 'g') + ' s, ' if not args.load else ''}"
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores", flush=True)
    if args.study or (args.load and "trials" in json.loads(Path(args.load).read_text())):
        study_main(args, t0)
        return
    if args.load:
        data = json.loads(Path(args.load).read_text())
        meta = data.pop("meta", {})                 # (files saved before 2026-11-28 have none)
        args.profile, args.budget = meta.get("profile", "?"), meta.get("budget", float("nan"))
        args.start, args.mix = meta.get("start", ""), meta.get("mix", "builtin")
        for r in (r for group in data.values() for r in group):
            r["curve"] = {float(f): tuple(c) for f, c in r["curve"].items()}
        analyse(args, data["base"], data["moves"], data["aa"], data["gain"], data["live"], t0)
        return
    runs = Runs(args.profile, args.budget, args.start)
    from benchmarks.search import start_values
    change = start_values(args.change, runs.original, "--change")      # NAME=VALUE, in the knob's type

    # seeds as a study gives them (measurement.seed_offset): the baseline's runs 0, 1, 2, ..., every other run
    # one of its own (1000 x a trial number); an A/A trial is the unchanged code on a seed of its own
    base = [runs.run("base", {}, offset=i) for i in range(args.baseline)]
    ref = reference(base, args.sigma, args.floor, args.after)
    draw = random_moves if args.mix == "random" else moves
    mv = [runs.run("move", e, offset=1000 * (1 + i)) for i, e in enumerate(draw(runs.original, args.moves, args.seed))]
    aa = [runs.run("A/A", {}, offset=1000 * (100 + i)) for i in range(args.runs)]
    gain = [runs.run("gain", change, offset=1000 * (200 + i)) for i in range(args.runs)]
    # the kill's cost: pruned moves again, live, with pruning on
    live = [dict(runs.run("live", r["edits"], reference=ref, offset=r["offset"]), replay=pruned_at(r, ref),
                 unpruned=r["seconds"])
            for r in [r for r in mv if pruned_at(r, ref) is not None][: args.live]]
    if args.save:
        meta = {"profile": args.profile, "budget": args.budget, "start": args.start, "mix": args.mix}
        Path(args.save).write_text(json.dumps({"meta": meta, "base": base, "moves": mv, "aa": aa, "gain": gain,
                                               "live": live}))
    analyse(args, base, mv, aa, gain, live, t0)


def reference(base, sigma, floor, after) -> pruning.Reference:
    """The baseline's Reference, as pruning.reference() makes it for a study whose best is the baseline."""
    curves = [{f: c[0] for f, c in r["curve"].items()} for r in base]
    shared = sorted(set.intersection(*(set(c) for c in curves)))
    return pruning.Reference(tuple((f, statistics.fmean(c[f] for c in curves)) for f in shared),
                             tuple((f, tuple(c[f] for c in curves)) for f in shared), len(base), sigma, floor, after)


def analyse(args, base, mv, aa, gain, live, t0):
    ref = reference(base, args.sigma, args.floor, args.after)
    kills = []
    for again in live:
        f = again["replay"]
        if again["reason"].startswith("pruned at "):
            at = float(again["reason"].split("%")[0].split()[-1]) / 100
            kills.append(again["seconds"] - again["curve"][at][1])
        print(f"  live re-run of a pruned move (replay: pruned at {f:.0%}): {again['reason'][:40] or again['state']}, "
              f"{again['seconds']:.1f} s against {again['unpruned']:.1f} s unpruned")
    kill = statistics.median(kills) if kills else 1.0

    print(f"\nreference: baseline x{len(base)}, sigma {args.sigma:g}, floor {args.floor:g}, after {args.after:g}; "
          f"kill cost {kill:.2f} s ({'measured on ' + str(len(kills)) + ' live runs' if kills else 'assumed'})")
    print(f"{'set':8} {'runs':>4} {'pruned':>7} {'mean s without':>15} {'mean s with':>12} {'trials/h without':>17} "
          f"{'trials/h with':>14} {'speed-up':>9}")
    speed = {}
    for label, rows in (("moves", mv), ("A/A", aa), ("gain", gain), ("all", mv + aa + gain)):
        if not rows:
            continue
        without = statistics.fmean(r["seconds"] for r in rows)
        with_ = statistics.fmean(trial_seconds(r, ref, kill) for r in rows)
        n = sum(pruned_at(r, ref) is not None for r in rows)
        speed[label] = without / with_
        print(f"{label:8} {len(rows):>4} {n:>7} {without:>15.1f} {with_:>12.1f} {3600 / without:>17.1f} "
              f"{3600 / with_:>14.1f} {speed[label]:>8.2f}x")
    for r in mv:
        f = pruned_at(r, ref)
        print(f"  move {str(r['edits'])[:50]:50} value {r['value'] if r['value'] is not None else '-'!s:10.10} "
              f"{'pruned at ' + format(f, '.0%') if f is not None else 'runs to the end'}")

    # an A/A trial is the unchanged code: it draws from the pool the baseline draws from (the baseline's runs
    # and the A/A ones), so it is no better than the baseline by construction (files saved before
    # 2026-11-28: seed 42 and seed-only changes; drawn from those alone, four seeds' offset from seed 42,
    # 1-3% at cpu 60 s, read as a gain or a loss)
    base_pool = [r for r in base + aa if r["value"] is not None]
    a_pool = base_pool
    b_pool = [r for r in gain if r["value"] is not None]
    if len(a_pool) >= 2 and len(b_pool) >= 2:
        sd = statistics.stdev(r["value"] for r in base_pool)
        d = statistics.fmean(r["value"] for r in a_pool) - statistics.fmean(r["value"] for r in b_pool)
        print(f"\nkeep rates ({args.studies} simulated studies x 20 trials, half true gains; the true gain is "
              f"{d:+.4f} = {d / sd:.1f} sd of the unchanged code's runs (sd {sd:.4f}); jitter sd {sd / 2:.4f}; "
              f"same seeds):")
        print(f"{'':16} {'false keeps (A/A)':>18} {'true keeps':>11}")
        for label, r in (("without pruning", None), ("with pruning", ref)):
            fk, tk = simulate(base_pool, a_pool, b_pool, r, random.Random(args.seed), args.studies, jitter=sd / 2)
            print(f"{label:16} {fk:>18.1%} {tk:>11.1%}")
    print("\nsensitivity (replayed on the same runs): sigma, floor -> speed-up on the moves, false keeps, true keeps")
    for sigma in (1.0, 1.5, 2.0, 3.0):
        for floor in (0.005, 0.01, 0.03):
            r = reference(base, sigma, floor, args.after)
            sp = (statistics.fmean(x["seconds"] for x in mv) / statistics.fmean(trial_seconds(x, r, kill) for x in mv)
                  if mv else 0.0)
            fk, tk = (simulate(base_pool, a_pool, b_pool, r, random.Random(args.seed), args.studies, jitter=sd / 2)
                      if len(a_pool) >= 2 and len(b_pool) >= 2 else (0.0, 0.0))
            print(f"  sigma {sigma:g} floor {floor:<6g} {sp:5.2f}x  false keeps {fk:5.1%}  true keeps {tk:5.1%}")
    moved = f"{speed['moves']:.2f}x" if "moves" in speed else "- (no moves measured)"
    print(f"\ntrials per hour: {moved}  ({args.mix} moves, profile {args.profile}, "
          f"budget {args.budget:g} s{'; from ' + args.start if args.start else ''}; "
          f"all sets: {speed.get('all', 0.0):.2f}x)")
    print(f"goal: >= 1.40x at a true-keep rate within 5 points and false keeps <= 5%; took "
          f"{(time.monotonic() - t0) / 60:.1f} min, load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
