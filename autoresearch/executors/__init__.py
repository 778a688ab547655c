"""Executors: where runs happen. `inline` (one run at a time in a thread of this process: the
live line sees its progress), `local` (worker processes on this machine, `slots` at once) or
`ray` (Ray tasks across the GPUs and nodes of a cluster; a local Ray by default).
The interface and what crosses it are in `executors/base.py`; the loop that drives one is
`autoresearch/scheduler.py`.

    get_executor(config)        # local and 1 worker -> inline; local -> processes; ray -> Ray
"""

from __future__ import annotations

import os

from autoresearch.errors import ConfigError
from autoresearch.executors.base import Executor, Job, Outcome, Setup, crashed, hostname  # noqa: F401


def get_executor(config) -> Executor:
    """The executor the config names, sized to config.workers."""
    if config.executor == "local":
        if config.workers == 1:
            from autoresearch.executors.inline import InlineExecutor
            return InlineExecutor()
        from autoresearch.executors.local import LocalExecutor
        return LocalExecutor(config.workers)
    if config.executor == "ray":
        from autoresearch.executors.ray import RayExecutor
        return RayExecutor(config.workers, address=config.ray_address or os.environ.get("RAY_ADDRESS", ""))
    raise ConfigError(f"unknown executor {config.executor!r}; known: local, ray")
