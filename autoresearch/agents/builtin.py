"""The builtin agent: no LLM, no network. It tunes the script's hyperparameters: its UPPER_CASE
constants and its argparse defaults (`add_argument("--lr", default=3e-4)` is `lr`).

Each proposal: find the knobs named in the `[search]` ranges with `ast`, read the trial history (each
recorded trial's constants and its runs; crashes count as failures, a pruned run is Optuna's PRUNED
and enters the gp's fit as far behind the best as its curve was where it stopped, at least
`pruned_behind` noise sds), and change one or two constants of
the best, so every trial is one readable change (`MATRIX_LR 0.04 -> 0.08`).
Until every knob has been moved once (screening) and the history holds `n_startup_trials` results,
it takes first steps from the best (one constant x/÷ 2-3, or 30-50% of its range, towards a side with
room): broad, so that an effect has a chance to show above a run's noise, and, unlike random draws,
one knob from a known-good point. `-o screen=false`: `n_startup_trials` first moves only.
After a keep, the next proposal from that point repeats its step once more (`_extension`: the pattern
move of Hooke and Jeeves), when that lands on an untried point inside the ranges; `-o extend=false`: off.
Then a model picks the change:
  - `gp` (default): an additive Gaussian process that knows the measured noise, and the one- or
    two-knob change with the highest expected improvement (agents/gp.py, which says why);
  - `tpe`: Optuna's TPE rebuilt from the history; of its point, the one or two constants that moved
    furthest from the best's values are applied.
`-o sampler=random` draws uniformly from the ranges from the first trial on, the same one or two
constants applied: random search, the baseline an optimiser must beat (benchmarks/search.py).
Literals are rewritten in place: comments and layout stay.

Ranges: `[search]` in autoresearch.toml, NAME = [low, high, scale] with scale one of
"log", "linear", "int", "int_log". `check_harness()` refuses, before the baseline, a name that
matches no knob and a flag the run command passes itself (changing its default does nothing).
"""

from __future__ import annotations

import math
import random

from autoresearch import knobs, pruning
from autoresearch.agents import Agent, Context, Proposal
from autoresearch.errors import ConfigError

SCALES = ("log", "linear", "int", "int_log")


def _distribution(name: str, spec, current):
    import optuna
    if not isinstance(spec, (list, tuple)) or len(spec) not in (2, 3):
        raise ConfigError(f"[search] {name} must be [low, high] or [low, high, scale]")
    lo, hi = spec[0], spec[1]
    scale = spec[2] if len(spec) == 3 else ("int" if isinstance(current, int) else "linear")
    if scale not in SCALES:
        raise ConfigError(f"[search] {name}: scale {scale!r} is not one of {', '.join(SCALES)}")
    if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo < hi):
        raise ConfigError(f"[search] {name}: need numbers low < high, got {lo!r}, {hi!r}")
    if isinstance(current, (int, float)) and not isinstance(current, bool):
        lo, hi = min(lo, current), max(hi, current)      # the file's value is always a valid point
    log = scale in ("log", "int_log")
    if log and lo <= 0:
        raise ConfigError(f"[search] {name}: a log range needs low > 0")
    if scale.startswith("int"):
        return optuna.distributions.IntDistribution(int(math.floor(lo)), int(math.ceil(hi)), log=log)
    return optuna.distributions.FloatDistribution(float(lo), float(hi), log=log)


def _round(value, dist):
    """3 significant digits: readable diffs, and a grid coarse enough to repeat itself rarely."""
    if isinstance(value, int):
        return value
    if value == 0:
        return 0.0
    digits = 3 - int(math.floor(math.log10(abs(value)))) - 1
    value = round(value, digits)
    return min(max(value, dist.low), dist.high)


def _distance(a, b, dist) -> float:
    if dist.log:
        return abs(math.log(max(a, 1e-300)) - math.log(max(b, 1e-300))) / (math.log(dist.high) - math.log(dist.low) or 1)
    return abs(a - b) / ((dist.high - dist.low) or 1)


def _inside(value, dist) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return dist.low <= value <= dist.high


def _gap(curve: dict, best_curves: list[dict]) -> float:
    """How far behind the best's curve (the mean of its runs, pruning.curves_of(best)) a pruned run's was at
    its last point, relative to the best's (0.05: 5% higher loss); 0 where either has no curve there."""
    if not curve:
        return 0.0
    f = max(curve)
    theirs = [c[f] for c in best_curves if f in c]
    if not theirs:
        return 0.0
    ref = sum(theirs) / len(theirs)
    return max(0.0, (curve[f] - ref) / abs(ref)) if ref else 0.0


def _key(name: str) -> str:
    """A [search] name as a knob name: `--learning-rate` is the argparse dest `learning_rate`."""
    return name.lstrip("-").replace("-", "_") if name.startswith("-") else name


def _local_move(current: dict, dists: dict, rng: random.Random, order: list[str], turn: int) -> dict:
    """A first step from the best, one knob: x/÷ 2-3 (log), 30-50% of its range (linear), +-1 (int),
    always towards a side with room (a knob at its bound moves inwards), and towards the middle of its
    [search] range (in its scale) when it sits in an outer 40% of it: the range is the user's prior, so a
    value near one end is likelier to gain inwards (from a detuned start, a coin's direction sent three of
    four detuned knobs further out, and a study kept nothing: stop 20). The knobs take turns (`order` is
    a seeded shuffle), so the first moves try different ones.

    Broad on purpose: before a knob has been tried nothing says how much it matters, and a step whose
    effect sits within a run's noise teaches the search nothing. With the earlier x/÷ 1.5-2 and +-10-25%,
    most first moves on real training (smoke profile, 3 s) landed within the noise, and random search,
    whose draws span whole ranges, found the gain seen most often there (WARMUP_RATIO 0.1-0.2) first."""
    name = order[turn % len(order)]
    dist, value = dists[name], current[name]
    up, down = value < dist.high, value > dist.low           # the sides with room
    sign = rng.choice((-1, 1)) if up and down else (1 if up else -1)
    where = _distance(value, dist.low, dist)                  # 0 (its low end) to 1 (its high end)
    if up and down and abs(where - 0.5) > 0.1:
        sign = 1 if where < 0.5 else -1
    if isinstance(dist.low, int) and not dist.log:
        new = value + sign
    elif dist.log:
        new = value * rng.choice((2.0, 3.0)) ** sign
        new = int(round(new)) if isinstance(dist.low, int) else new
    else:
        new = value + sign * rng.uniform(0.3, 0.5) * (dist.high - dist.low)
    new = min(max(new, dist.low), dist.high)
    return dict(current, **{name: _round(new, dist)})


def _extension(context: Context, current: dict, dists: dict, seen: set) -> dict | None:
    """The keep's step taken once more: the best (a tree node: that node) minus the point it was run on,
    added again in each knob's search scale, clipped to the range (a knob whose bound leaves it less than
    half its step stays); None where that point has been tried, no knob moves, or the step is not a change
    of one or two knobs of the ranges.

    Why: a first move is a fixed 30-50% of a range (or x/÷ 2-3), so an optimum towards the far end is
    reached only part way, and the model, which knows nothing beyond the points it has, did not go further:
    from WARMDOWN_RATIO 0.1, three builtin studies kept 0.38-0.45 where random search kept 0.67-0.88, and
    random was ahead by 2.3% (stop 21). A step that gained is evidence for its direction; repeating it
    once tests that at the price of one trial, and a step that gains again is repeated again."""
    from autoresearch.agents import gp
    node = context.node or context.best
    if node is None or node.kind == "baseline":
        return None
    base = (node.extra or {}).get("base") or node.parent
    parent = next((t for t in context.history if t.commit and t.commit == base), None)
    before = (parent.extra or {}).get("knobs") if parent is not None else None
    if not isinstance(before, dict) or not all(_inside(before.get(k), d) for k, d in dists.items()):
        return None
    moved = [k for k in dists if current[k] != before[k]]
    if not 0 < len(moved) <= 2:
        return None
    change = {}
    for k in moved:                    # a knob its bound stops short of half its step stays
        here = gp.unit(current[k], dists[k])
        du = here - gp.unit(before[k], dists[k])
        value = _round(gp.from_unit(min(max(here + du, 0.0), 1.0), dists[k]), dists[k])
        if value != current[k] and abs(gp.unit(value, dists[k]) - here) >= abs(du) / 2:
            change[k] = value
    if not change or tuple(sorted(dict(current, **change).items())) in seen:
        return None
    return change


class BuiltinAgent(Agent):
    name = "builtin"

    def __init__(self, file: str | None = None, max_changes: int = 2, n_startup_trials: int = 5,
                 sampler: str = "gp", screen: bool = True, pruned_behind: float = 2.0,
                 extend: bool = True):
        self.file = file                      # which editable file holds the constants (default: first .py)
        self.max_changes = max(1, max_changes)
        self.n_startup_trials = n_startup_trials
        if sampler not in ("gp", "tpe", "random"):
            raise ConfigError(f"sampler = {sampler!r}: use gp (default), tpe or random")
        self.sampler = sampler                # after the first moves: gp (agents/gp.py) or tpe (Optuna's);
        #                                       random: uniform draws from the start, no model (a baseline)
        self.screen = screen                  # every knob one first move before the model (False: n_startup_trials only)
        self.pruned_behind = pruned_behind    # the gp is told a pruned run ended this many noise sds behind the best
        self.extend = extend                  # after a keep, its step once more (_extension) before anything else

    def check(self) -> None:
        import optuna  # noqa: F401  (a clear ImportError if the install is broken)

    def _file(self, editable) -> str | None:
        return self.file or next((f for f in editable if f.endswith(".py")), None)

    def check_harness(self, harness) -> None:
        """Before the baseline: every [search] name is a knob of the script, and not one its run command sets."""
        name = self._file(harness.editable)
        if name is None:
            raise ConfigError("the builtin agent needs an editable .py file with UPPER_CASE constants or argparse "
                              "defaults; name one in [harness] editable, or pick another --agent")
        try:
            found = knobs.find((harness.root / name).read_text())
        except (OSError, SyntaxError, ValueError) as e:
            raise ConfigError(f"the builtin agent cannot read {name}: {e}") from None
        numeric = {k: v for k, v in found.items() if isinstance(v.value, (int, float)) and not isinstance(v.value, bool)}
        listing = ", ".join(f"{k} = {knobs.format_value(v.value)}" for k, v in numeric.items()) or "none"
        if not harness.search:
            raise ConfigError(f"autoresearch.toml has no [search] ranges for the builtin agent; {name} has: "
                              f"{listing}. Add NAME = [low, high, \"log\"] lines under [search]")
        unknown = [k for k in harness.search if _key(k) not in numeric]
        if unknown:
            raise ConfigError(f"[search] names {', '.join(unknown)}, which {name} has not as a numeric UPPER_CASE "
                              f"constant or argparse default; found: {listing}")
        fixed = [k for k in knobs.on_command(harness.run, found) if k in {_key(n) for n in harness.search}]
        if fixed:
            raise ConfigError(f"the run command `{harness.run}` sets {', '.join(numeric[k].flag for k in fixed)} "
                              f"itself, so changing the default in {name} does nothing: remove it from run "
                              f"(set the default instead) or from [search]")
        for k, spec in harness.search.items():
            _distribution(k, spec, numeric[_key(k)].value)

    def propose(self, context: Context) -> Proposal:
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        name = self._file(context.editable)
        if name is None or name not in context.files:
            return Proposal("", invalid="the builtin agent needs an editable .py file with UPPER_CASE constants "
                                        "or argparse defaults")
        source = context.files[name]
        found = knobs.find(source)
        search = {_key(k): v for k, v in context.search.items()}
        space = {k: v for k, v in search.items() if k in found and not isinstance(found[k].value, (bool, str))}
        if not space:
            return Proposal("", invalid=f"no [search] range names a constant or argparse default of {name}; "
                                        f"add ranges to autoresearch.toml [search]")
        current = {k: found[k].value for k in space}
        dists = {k: _distribution(k, space[k], current[k]) for k in space}
        direction = context.direction
        seed = context.seed * 100003 + context.trial_number
        sampler = (optuna.samplers.RandomSampler(seed=seed) if self.sampler == "random" else
                   optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials, multivariate=True))
        study = optuna.create_study(direction=direction, sampler=sampler)
        seen = set()
        observed, failed, stopped = [], [], []   # for the gp: (point, run values); crashed points; pruned ones
        best_curves = pruning.curves_of(context.best) if context.best is not None else []
        for t in context.history:
            params = (t.extra or {}).get("knobs") or {}
            point = {k: params[k] for k in dists if k in params}
            if len(point) != len(dists) or not all(_inside(v, dists[k]) for k, v in point.items()):
                continue
            seen.add(tuple(sorted(point.items())))
            if t.state.value in ("keep", "discard") and t.value is not None and math.isfinite(t.value):
                trial = optuna.trial.create_trial(params=point, distributions=dists, value=t.value)
                observed.append((point, [v for v in t.values if math.isfinite(v)] or [t.value]))
            elif (t.extra or {}).get("pruned"):     # stopped early: Optuna's PRUNED, with its curve so far
                curve = next(iter(pruning.curves_of(t)), {})
                stopped.append((point, _gap(curve, best_curves)))
                trial = optuna.trial.create_trial(params=point, distributions=dists,
                                                  state=optuna.trial.TrialState.PRUNED,
                                                  intermediate_values={round(f * 100): v for f, v in curve.items()})
            elif t.state.value in ("crash", "timeout"):
                failed.append(point)
                trial = optuna.trial.create_trial(params=point, distributions=dists,
                                                  state=optuna.trial.TrialState.FAIL)
            else:
                continue
            study.add_trial(trial)
        rng = random.Random(f"{context.seed}/{context.trial_number}")   # a str seed is hashed: neighbours differ
        order = sorted(dists)
        random.Random(context.seed).shuffle(order)
        points = [dict(p) for p in seen]
        tried = {k for k in dists if len({p[k] for p in points}) > 1}   # knobs the history has moved
        unscreened = [k for k in order if k not in tried] if self.screen else []
        local = self.sampler != "random" and (len(study.trials) < self.n_startup_trials or bool(unscreened))
        turns = unscreened or order                  # first moves: the knobs not moved yet, else all in turn
        if self.extend and self.sampler != "random":
            change = _extension(context, current, dists, seen)
            if change:
                return self._write(context.root / name, source, current, change)
        if self.sampler == "gp" and not local and observed:
            worst = (max if direction == "minimize" else min)(v for _, vs in observed for v in vs)
            from autoresearch.agents import gp       # a crashed point: as bad as the worst run
            fitted = observed + [(p, [worst]) for p in failed]
            if context.best is not None and context.best.value is not None:
                # a pruned point has no final value, but its curve was behind the best's by more than the noise
                # allows: it is fitted as far behind the best as its curve was where it stopped (relative), and at
                # least pruned_behind noise sds, never worse than the worst full run (as the worst run, a pruned
                # screening move condemned its whole knob; left out, the model was blind to most trials on real
                # training, where half and more are pruned, and proposed the same pruned region again and again:
                # SCALAR_LR 2.0 four times in one study; at 2 sds alone, DEPTH 1 -> 6, 22% behind at 20% of the
                # budget, read as a near miss once the noise was 0.5%, and DEPTH moves came back five times)
                sign = 1 if direction == "minimize" else -1
                base = context.best.value
                for p, gap in stopped:
                    behind = base + sign * max(self.pruned_behind * context.noise_sd, gap * abs(base))
                    fitted.append((p, [min(behind, worst) if sign > 0 else max(behind, worst)]))
            change = gp.propose(fitted, current, dists, context.noise_sd, direction, seen, rng,
                                self.max_changes, _round)
            if change:
                return self._write(context.root / name, source, current, change)
        for attempt in range(20):
            asked = study.ask(dists)
            sampled = ({k: _round(v, dists[k]) for k, v in asked.params.items()} if not local
                       else _local_move(current, dists, rng, turns, context.trial_number + attempt))
            moved = sorted((k for k in dists if sampled[k] != current[k]),
                           key=lambda k: _distance(sampled[k], current[k], dists[k]), reverse=True)
            if not moved:
                study.tell(asked, state=optuna.trial.TrialState.FAIL)
                continue
            n = 1 if rng.random() < 0.6 or self.max_changes == 1 else min(self.max_changes, len(moved))
            change = {k: sampled[k] for k in moved[:n]}
            point = dict(current, **change)
            study.tell(asked, state=optuna.trial.TrialState.FAIL)  # only to move on; not a result
            if tuple(sorted(point.items())) in seen:
                continue
            return self._write(context.root / name, source, current, change)
        return Proposal("", invalid="the search found no untried point near the best after 20 draws")

    @staticmethod
    def _write(path, source: str, current: dict, change: dict) -> Proposal:
        path.write_text(knobs.rewrite(source, change))
        desc = ", ".join(f"{k} {knobs.format_value(current[k])} -> {knobs.format_value(v)}" for k, v in change.items())
        return Proposal(desc, extra={"params": dict(current, **change)})
