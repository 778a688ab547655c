"""Shared by the benchmarks: a throw-away workspace of the default harness, prepared."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path


def workspace(profile: str = "cpu", budget: float | None = None, root: str | None = None, tag: str = "bench"):
    """init + prepare a workspace in a temp dir; budget (seconds) overrides the profile's TIME_BUDGET."""
    from autoresearch.harness import copy_into
    from autoresearch.study import prepare
    from autoresearch.workspace import init

    d = Path(root or tempfile.mkdtemp(prefix="autoresearch-bench-")) / "ws"
    d.mkdir(parents=True)
    copy_into(d, profile)
    if budget is not None:
        # the benchmark's own copy of the read-only file: shorten this profile's time budget
        p = d / "prepare.py"
        text = p.read_text()
        start = text.index(f'"{profile}": {{')
        text = text[:start] + re.sub(r'"TIME_BUDGET": [0-9.]+', f'"TIME_BUDGET": {budget}', text[start:], count=1)
        p.write_text(text)
        t = d / "autoresearch.toml"
        t.write_text(re.sub(r"^budget = [0-9.]+", f"budget = {budget}", t.read_text(), flags=re.M))
    ws = init(d, profile=profile, tag=tag)
    prepare(ws)
    return ws
