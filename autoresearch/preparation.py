"""Preparation: is the harness' data there, and how it gets there. The one place that knows.

`prepare()` runs the harness' `prepare` command (data, tokenizer) and streams its output;
`problem()` runs its `check` command and says why the data is not there ('' when it is, or
when the harness has no check); `ensure()` prepares once per machine under a lock (Ray nodes).

    prepare("runs/exp", progress=print)       # = autoresearch prepare -C runs/exp
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from autoresearch.errors import NotPreparedError
from autoresearch.hashing import contents_hash
from autoresearch.measurement import harness_env, tail_lines

_PREPARED: set[str] = set()        # per process: harnesses known to be prepared on this machine


def prepare(workspace, progress=None) -> None:
    """Run the harness' prepare command (data, tokenizer) in the workspace, streaming its output."""
    from autoresearch.harness import Harness
    from autoresearch.workspace import Workspace
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    harness = Harness.load(ws.root)
    if not harness.prepare:
        return
    proc = subprocess.Popen(harness.command(harness.prepare), cwd=ws.root, env=harness_env(harness),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if progress:
            progress(line.rstrip("\n"))
    if proc.wait() != 0:
        raise NotPreparedError(f"`{harness.prepare}` failed in {ws.root} (exit {proc.returncode}):\n"
                               + "".join(lines[-20:]))


def problem(root: Path, harness) -> str:
    """'' when the harness' check command exits 0 (or there is none); else its output, trimmed."""
    if not harness.check:
        return ""
    r = subprocess.run(harness.command(harness.check), cwd=root, env=harness_env(harness), capture_output=True,
                       text=True)
    return "" if r.returncode == 0 else ((r.stdout + r.stderr).strip()[-2000:] or f"exit {r.returncode}")


def check(root: Path, harness) -> None:
    """Raise NotPreparedError (saying what to run) when the harness' data is not there."""
    why = problem(root, harness)
    if why:
        raise NotPreparedError(f"the data for profile {harness.profile or '?'} is not prepared: run "
                               f"`autoresearch prepare` in {root}\n{why}")


def ensure(root: Path, harness, key: str) -> str:
    """'' when the data is there on this machine, preparing it first if needed, once per machine
    (other processes wait on a lock, then check again); else why it could not be prepared."""
    if not harness.check or key in _PREPARED:
        return ""
    if problem(root, harness):
        if not harness.prepare:
            return "the harness' data is not prepared on this node and it has no prepare command"
        import fcntl
        lock = Path(tempfile.gettempdir()) / f"autoresearch-prepare-{contents_hash({}, key, 12)}.lock"
        with open(lock, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            if problem(root, harness):
                r = subprocess.run(harness.command(harness.prepare), cwd=root, env=harness_env(harness),
                                   capture_output=True, text=True)
                if r.returncode != 0 or problem(root, harness):
                    return (f"preparing the data on this node failed (exit {r.returncode})\n"
                            f"{tail_lines(r.stdout + r.stderr)}")
    _PREPARED.add(key)
    return ""
