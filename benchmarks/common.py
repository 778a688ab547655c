"""Shared by the benchmarks: a throw-away workspace of the default harness, prepared."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path


def workspace(profile: str = "cpu", budget: float | None = None, root: str | None = None, tag: str = "bench",
              eval_tokens: int | None = None, warm: bool | None = None, overrun: float | None = None):
    """init + prepare a workspace in a temp dir; budget (seconds) and eval_tokens override the profile's
    TIME_BUDGET and EVAL_TOKENS in this workspace's own copy of the read-only file; warm=True / False
    sets the harness' preload list to the GPU profiles' list / to none (None: the profile's default)."""
    from autoresearch.harness import GPU_PRELOAD, copy_into, preload_line
    from autoresearch.study import prepare
    from autoresearch.workspace import init

    d = Path(root or tempfile.mkdtemp(prefix="autoresearch-bench-")) / "ws"
    d.mkdir(parents=True)
    copy_into(d, profile)
    p = d / "prepare.py"
    text = p.read_text()
    start = text.index(f'"{profile}": {{')
    head, tail = text[:start], text[start:]
    if eval_tokens is not None:
        tail = re.sub(r'"EVAL_TOKENS": [0-9]+', f'"EVAL_TOKENS": {eval_tokens}', tail, count=1)
    p.write_text(head + tail)
    if budget is not None:
        t = d / "autoresearch.toml"
        t.write_text(re.sub(r"^budget = [0-9.]+", f"budget = {budget}", t.read_text(), flags=re.M))
    if overrun is not None:      # training seconds a run may claim past the budget (a loaded machine's long steps)
        t = d / "autoresearch.toml"
        t.write_text(re.sub(r"^#? ?overrun = [0-9.]+", f"overrun = {overrun:g}", t.read_text(), count=1, flags=re.M))
    if warm is not None:
        t = d / "autoresearch.toml"
        line = preload_line(GPU_PRELOAD if warm else ())
        t.write_text(re.sub(r"^preload = \[.*?\]", lambda _: line, t.read_text(), flags=re.M | re.S))
    ws = init(d, profile=profile, tag=tag)
    prepare(ws)
    return ws
