"""autoresearch: an agent edits train.py, the tool runs a fixed-budget experiment, a protected
evaluator scores it, and git keeps only what improved.

Python API (mirrors the CLI)::

    import autoresearch
    ws = autoresearch.init("runs/demo", profile="cpu")
    autoresearch.prepare(ws)
    study = autoresearch.Study(ws, agent="builtin")
    study.optimize(max_trials=5)
    print(study.best)

Importing this package does nothing but define names: torch, optuna, matplotlib and the
LLM SDKs are imported where they are used.
"""

from autoresearch.errors import (
    AgentError,
    AgentUnavailable,
    AutoresearchError,
    ConfigError,
    NotPreparedError,
    WorkspaceError,
)

__version__ = "0.1.0"

__all__ = [
    "AgentError", "AgentUnavailable", "AutoresearchError", "ConfigError", "NotPreparedError",
    "WorkspaceError", "Study", "Trial", "TrialState", "init", "prepare", "__version__",
]


def __getattr__(name):
    # lazy: `import autoresearch` stays cheap, the API names resolve on first use
    if name in ("Study", "init", "prepare"):
        from autoresearch import study
        return getattr(study, name)
    if name in ("Trial", "TrialState"):
        from autoresearch import trial
        return getattr(trial, name)
    raise AttributeError(name)
