"""The hybrid agent: an optimiser (the builtin agent) runs the study and an LLM agent takes a
share of the trials, seeing the optimiser's state (`--agent builtin+claude`, `-o llm_share=0.3`).

Which one proposes trial n is fixed by the seed: the LLM takes trial n when floor(n x share + u)
moves past floor((n - 1) x share + u), u a uniform draw from the seed, so any run of trials gets
its share of LLM trials to within one, and the same seed gives the same turns.
The LLM's context says which knobs the optimiser searches, over which ranges, and the best
trial's values of them, beside the history every LLM agent gets (each trial's hypothesis and
outcome). The optimiser learns from the LLM's trials: the study records every trial's knob
values (Trial.extra["knobs"], read from the files it ran), and the builtin agent rebuilds its
model (the gp, or Optuna's TPE) from those records, whoever made the trial.

Options: llm_share (0..1) and the optimiser's own (file, max_changes, n_startup_trials, sampler, screen, extend,
pruned_behind) are taken here; every other option goes to the LLM agent (model, base_url, max_turns, ...).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import random

from autoresearch.agents import Agent, Context, Proposal
from autoresearch.errors import ConfigError


def llm_turn(trial_number: int, share: float, seed: int) -> bool:
    """Whether the LLM proposes this trial (deterministic given the seed)."""
    if share <= 0:
        return False
    if share >= 1:
        return True
    u = random.Random(f"hybrid/{seed}").random()
    return math.floor(trial_number * share + u) > math.floor((trial_number - 1) * share + u)


def optimiser_notes(context: Context) -> tuple[str, ...]:
    """What the LLM is told about the optimiser: its knobs and ranges, and the best trial's values."""
    if not context.search:
        return ()
    best = (context.best.extra or {}).get("knobs", {}) if context.best is not None else {}
    lines = ["## The optimiser beside you",
             "An optimiser proposes most trials of this study by tuning these knobs; you make the "
             "rest. It learns from your trials too. Prefer changes it cannot make (structure, algorithm, "
             "schedule shape); retuning its knobs duplicates its work.",
             "knob: its range -> its value in the best trial"]
    for name, spec in context.search.items():
        key = name.lstrip("-").replace("-", "_") if name.startswith("-") else name
        lines.append(f"- {name}: {list(spec)} -> {best.get(key, '?')}")
    tried = [t for t in context.history if (t.extra or {}).get("knobs") and t.value is not None
             and getattr(t.state, "value", t.state) in ("keep", "discard")]
    if tried:
        sign = 1 if context.direction == "minimize" else -1
        top = sorted(tried, key=lambda t: sign * t.value)[:5]
        lines.append(f"The optimiser's best points so far ({context.metric}):")
        for t in top:
            point = ", ".join(f"{k}={t.extra['knobs'].get(k.lstrip('-').replace('-', '_'), '?')}" for k in context.search)
            lines.append(f"- trial {t.number}: {point} -> {t.value:.6g}")
    return tuple(lines)


class HybridAgent(Agent):
    name = "hybrid"

    def __init__(self, optimiser="builtin", llm="claude", llm_share: float = 0.3, **options):
        from autoresearch.agents import get_agent
        from autoresearch.agents.builtin import BuiltinAgent
        try:
            self.llm_share = float(llm_share)
        except (TypeError, ValueError):
            raise ConfigError(f"llm_share = {llm_share!r}: give a number from 0 to 1") from None
        if not 0 <= self.llm_share <= 1:
            raise ConfigError(f"llm_share = {llm_share!r}: give a number from 0 to 1")
        mine = set(inspect.signature(BuiltinAgent.__init__).parameters) - {"self"}
        opt_options = {k: v for k, v in options.items() if k in mine}
        llm_options = {k: v for k, v in options.items() if k not in mine}
        self.optimiser = get_agent(optimiser, **opt_options) if isinstance(optimiser, str) else optimiser
        self.llm = get_agent(llm, **llm_options) if isinstance(llm, str) else llm
        self.name = f"{getattr(self.optimiser, 'name', 'optimiser')}+{getattr(self.llm, 'name', 'llm')}"

    def check(self) -> None:
        for agent in (self.optimiser, self.llm):
            fn = getattr(agent, "check", None)
            if fn is not None:
                fn()

    def check_harness(self, harness) -> None:
        fn = getattr(self.optimiser, "check_harness", None)
        if fn is not None:
            fn(harness)

    def propose(self, context: Context) -> Proposal:
        if llm_turn(context.trial_number, self.llm_share, context.seed):
            ctx = dataclasses.replace(context, notes=(*context.notes, *optimiser_notes(context)))
            p, by = self.llm.propose(ctx), "llm"
        else:
            p, by = self.optimiser.propose(context), "optimiser"
        return dataclasses.replace(p, extra={**(p.extra or {}), "by": by})
