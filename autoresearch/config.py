"""Config: the study's settings, one frozen dataclass.

Precedence: the `[study]` table of autoresearch.toml < env AUTORESEARCH_<NAME> < flags.
(The harness itself, files and commands, is `Harness`; this is how the loop behaves.)
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from autoresearch.errors import ConfigError


@dataclass(frozen=True)
class Config:
    agent: str = "builtin"            # builtin | claude | codex | openai | anthropic | command | a plug-in
    baseline_runs: int = 3            # the baseline runs this many times to measure noise
    sigma: float = 2.0                # keep only gains above sigma x the standard error of the difference
    min_delta: float = 0.0            # ... and at least this large (metric units)
    confirm_band: float = 1.5         # a gain within this many standard errors of the threshold is re-run
    max_repeats: int = 4              # measurements of one candidate at most
    rerun_best: bool = True           # a close call also re-measures the best (its mean sharpens too)
    futility: float = 0.2             # a close call is not re-run when its chance of a keep is below this (judge.py)
    prior_sd: float = 0.0             # noise sd assumed until repeats measure one
    max_agent_failures: int = 5       # this many agent failures in a row stop the study
    memory_limit_mb: float = 0.0      # kill a run above this RSS; 0 = runner.default_memory_limit_mb()
    max_trials: int | None = None     # trials in this invocation (baseline not counted)
    hours: float | None = None        # wall-clock hours for this invocation
    max_cost: float | None = None     # US dollars of agent cost on this tag, in total
    seed: int = 0
    workers: int = 1                  # trials in flight at once
    pipeline: bool | None = None      # propose the next change while runs go (it then misses the last result);
                                      # None = only with several workers
    executor: str = "local"           # local | ray
    ray_address: str = ""             # join this Ray cluster; "" = start a local one
    rescore: bool = True              # re-score with the harness' protected evaluator when it has one
    sandbox: str = "auto"             # auto (bubblewrap where it works) | bwrap (required) | none
    disturbed_below: float = 0.8      # a run with a CPU share below this x the baseline's is disturbed; 0 = off
    disturbed_reruns: int = 2         # ... and measured again at most this many times, then judged with a note
    stall: int | None = None          # stop after this many trials in a row without a keep
    stall_hint: int = 5               # after this many trials without a keep, the agent is told to change direction
    prune: bool = True                # stop a trial's run whose curve falls behind the best's (autoresearch/pruning.py)
    prune_sigma: float = 2.0          # ... by more than this many noise sds there, and not catching up
    prune_floor: float = 0.01         # ... the noise (the repeats', pooled) at least this fraction of the loss
    prune_after: float = 0.2          # ... judged from this fraction of the budget on
    search: str = "greedy"            # greedy: every proposal improves the best | tree: one of the top tree_k (tree.py)
    tree_k: int = 3                   # tree search: the number of top trials a proposal may improve

    @classmethod
    def load(cls, table: dict | None = None, environ: dict | None = None, **flags) -> "Config":
        environ = os.environ if environ is None else environ
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict = {}
        for source, items in (("autoresearch.toml [study]", (table or {}).items()),
                              ("environment", ((k[len("AUTORESEARCH_"):].lower(), v) for k, v in environ.items()
                                               if k.startswith("AUTORESEARCH_")
                                               and k[len("AUTORESEARCH_"):].lower() in fields)),
                              ("flags", ((k, v) for k, v in flags.items() if v is not None))):
            for key, raw in items:
                if key not in fields:
                    raise ConfigError(f"unknown setting {key!r} in {source}; known: {', '.join(fields)}")
                values[key] = _coerce(key, raw, fields[key], source)
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.baseline_runs < 1:
            raise ConfigError("baseline_runs must be at least 1")
        if self.max_repeats < 1:
            raise ConfigError("max_repeats must be at least 1")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if self.executor not in ("local", "ray"):
            raise ConfigError(f"unknown executor {self.executor!r}; known: local, ray")
        if self.sandbox not in ("auto", "bwrap", "none"):
            raise ConfigError(f"sandbox = {self.sandbox!r}: use auto, bwrap or none")
        if self.disturbed_below < 0 or self.disturbed_reruns < 0:
            raise ConfigError("disturbed_below and disturbed_reruns must not be negative")
        if self.stall is not None and self.stall < 1:
            raise ConfigError("stall must be at least 1 (trials without a keep); leave it out for no limit")
        if self.prune_sigma <= 0 or self.prune_floor < 0 or not 0 <= self.prune_after <= 1:
            raise ConfigError("prune_sigma must be above 0, prune_floor not negative, prune_after within 0..1")
        if self.search not in ("greedy", "tree"):
            raise ConfigError(f"search = {self.search!r}: use greedy or tree")
        if self.tree_k < 1:
            raise ConfigError(f"tree_k = {self.tree_k}: give at least 1 (how many top trials a proposal may improve)")
        if not 0 <= self.futility < 1:
            raise ConfigError(f"futility = {self.futility}: give a probability from 0 (off) to below 1")
        if self.sigma < 0 or self.min_delta < 0 or self.confirm_band < 0:
            raise ConfigError("sigma, min_delta and confirm_band must not be negative")

    def replace(self, **kw) -> "Config":
        return dataclasses.replace(self, **kw)


def _coerce(key: str, raw, field, source: str):
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    try:
        if raw is None:
            return None
        if kind.startswith("bool"):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind.startswith("int"):
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} = {raw!r} in {source} is not a valid {kind.split(' ')[0]}") from None
