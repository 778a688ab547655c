"""Agents: anything with `propose(context) -> Proposal`.

An agent edits the editable files in `context.root` (the working tree) and returns a
Proposal saying in one line what it tried. The study checks the diff, commits, runs and
judges; the agent never runs training or touches git. Backends are looked up by name in one
registry plus the entry-point group `autoresearch.agents` (a plug-in is a class with a
`propose` method; `check()` is optional).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch.errors import AgentUnavailable, ConfigError
from autoresearch.trial import Trial

ENTRY_POINT_GROUP = "autoresearch.agents"

BUILTIN = {
    "builtin": "autoresearch.agents.builtin:BuiltinAgent",
    "claude": "autoresearch.agents.claude:ClaudeAgent",
    "codex": "autoresearch.agents.codex:CodexAgent",
    "openai": "autoresearch.agents.openai:OpenAIAgent",
    "anthropic": "autoresearch.agents.anthropic:AnthropicAgent",
    "command": "autoresearch.agents.command:CommandAgent",
}


@dataclass(frozen=True)
class Context:
    """What an agent sees for one proposal; it edits files under `root`."""
    root: Path                          # the working tree to edit (the best commit, or `node`'s; clean)
    program: str                        # program.md: the human's instructions
    files: dict                         # editable file name -> its current text
    editable: tuple = ()
    readonly: tuple = ()
    history: tuple = ()                 # every Trial so far, oldest first
    best: Trial | None = None
    last_failure: str = ""              # log tail of the most recent crash since the best
    metric: str = "val_bpb"
    direction: str = "minimize"
    noise_sd: float = 0.0               # measured noise of the metric
    trial_number: int = 0
    seed: int = 0
    search: dict = field(default_factory=dict)   # [search] ranges (builtin agent)
    stall_hint: int = 0                 # after this many trials without a keep, the prompt says to change direction
    notes: tuple = ()                   # more lines for the prompt (e.g. the hybrid agent's optimiser state)
    node: Trial | None = None           # tree search: the trial whose code `root` holds when it is not the best
    sandbox: object = None              # the Sandbox an agent's program runs in (agents/process.py run)
    hidden: tuple = ()                  # paths it must not see (the harness' evaluation splits)


@dataclass(frozen=True)
class Proposal:
    description: str                    # one line: what was tried
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    invalid: str = ""                   # non-empty: no usable change (e.g. a malformed answer); why
    extra: dict = field(default_factory=dict)


class Agent:
    """Base class (optional: any object with `propose` works)."""
    name = "agent"

    def check(self) -> None:
        """Raise AgentUnavailable when this agent cannot run here (binary, login, key)."""

    def propose(self, context: Context) -> Proposal:
        raise NotImplementedError


def _entry_points() -> dict:
    from importlib.metadata import entry_points
    try:
        eps = entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # Python < 3.10 API
        eps = entry_points().get(ENTRY_POINT_GROUP, [])
    return {ep.name: ep for ep in eps}


def known() -> dict[str, str]:
    """name -> where it comes from ("builtin" or the plug-in's distribution)."""
    names = {name: "autoresearch" for name in BUILTIN}
    for name, ep in _entry_points().items():
        names.setdefault(name, getattr(getattr(ep, "dist", None), "name", None) or ep.value)
    return names


def _load(name: str):
    if name in BUILTIN:
        module, attr = BUILTIN[name].split(":")
        return getattr(importlib.import_module(module), attr)
    eps = _entry_points()
    if name in eps:
        return eps[name].load()
    raise ConfigError(f"unknown agent {name!r}; known: {', '.join(sorted(known()))}")


def get_agent(name: str, **options) -> Agent:
    """Build the agent called name with options (from autoresearch.toml [agents.NAME] and flags)."""
    if "+" in name:      # a hybrid: `builtin+claude` (optimiser+LLM), see agents/hybrid.py
        optimiser, _, llm = name.partition("+")
        _load(optimiser), _load(llm)          # an unknown name: the usual one-line error
        return importlib.import_module("autoresearch.agents.hybrid").HybridAgent(optimiser, llm, **options)
    cls = _load(name)
    try:
        agent = cls(**options)
    except TypeError as e:
        raise ConfigError(f"agent {name!r} does not take these options: {e}") from e
    if not hasattr(agent, "propose"):
        raise ConfigError(f"agent {name!r} ({cls!r}) has no propose() method")
    return agent


def check(agent) -> None:
    fn = getattr(agent, "check", None)
    if fn is not None:
        fn()


def status() -> list[tuple[str, str, str]]:
    """(name, source, 'ok' or why not usable) for every known agent, for `autoresearch agents`."""
    rows = []
    for name, source in sorted(known().items()):
        try:
            check(get_agent(name))
            state = "ok"
        except AgentUnavailable as e:
            state = f"unavailable: {e}"
        except Exception as e:  # a broken plug-in must not break the listing
            state = f"broken: {type(e).__name__}: {e}"
        rows.append((name, source, state))
    return rows
