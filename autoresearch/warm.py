"""Warm starts: `python script.py` commands handed to an interpreter started ahead of need.

Every trial runs two or three Python commands (train, re-score, holdout for a kept one), and each
spends seconds importing torch before it does anything (about 2-3 s on this CPU). A harness that
names its heavy modules (`preload = ["torch"]` in autoresearch.toml) gets a spare interpreter,
started in the background while the current command runs, that has imported them and waits on
its stdin (autoresearch/_interpreter.py). The next eligible command is sent to the spare instead
of a fresh process: same argv, working directory and environment, its own process group, the same
external time limit, counted from the hand-over. Anything that cannot use a spare (not `python
FILE.py`, no spare ready, a spare that died) starts cold, exactly as before.

Nothing of a run survives into the next: a spare runs one command and exits, so a script that
patches a module in its own interpreter patches nothing the next command sees.
"""

from __future__ import annotations

import atexit
import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

CHILD = str(Path(__file__).with_name("_interpreter.py"))
_MAX_SPARES = 2

_lock = threading.Lock()
_spares: dict[tuple, list[subprocess.Popen]] = {}   # key -> started interpreters, waiting for a job
_pending: dict[tuple, int] = {}                      # key -> spares asked for and not started yet
_requests: queue.Queue = queue.Queue()
_spawner: threading.Thread | None = None


def eligible(argv: list[str]) -> bool:
    """`<this python> FILE.py [args]`: the commands a spare can run unchanged."""
    return len(argv) >= 2 and argv[0] == sys.executable and argv[1].endswith(".py") and not argv[1].startswith("-")


def _key(argv: list[str], env: dict, preload: tuple[str, ...]) -> tuple:
    # per-run variables (AUTORESEARCH_*) are set at hand-over; the rest must match what the spare started with
    base = tuple(sorted((k, v) for k, v in env.items() if not k.startswith("AUTORESEARCH_")))
    return (argv[0], tuple(preload), base)


def start(argv: list[str], cwd: str, env: dict, preload: tuple[str, ...], popen_kw: dict,
          spares: int = 0) -> subprocess.Popen | None:
    """Hand argv to a spare interpreter and return it running, or None (the caller starts cold).
    Then start spares in the background until `spares` wait ready for the commands after this one.
    Only a command with CPU to spare should ask for them (a training run: its compile step leaves a
    core idle on a CPU, and the CPU is idle while a GPU trains); a spare importing beside a command
    that keeps every core busy (an evaluation on the CPU) slows that command by as much as it saves."""
    if not preload or not eligible(argv):
        return None
    key = _key(argv, env, preload)
    with _lock:
        waiting = _spares.get(key, [])
        proc = waiting.pop(0) if waiting else None
        missing = max(0, spares - len(waiting) - _pending.get(key, 0))
        _pending[key] = _pending.get(key, 0) + missing
    for _ in range(missing):
        _request(key, env, popen_kw)
    if proc is None or proc.poll() is not None:
        return None
    job = {"argv": argv[1:], "cwd": str(cwd), "env": env}
    try:
        proc.stdin.write(json.dumps(job).encode() + b"\n")
        proc.stdin.close()
    except OSError:
        _stop(proc)
        return None
    return proc


def _request(key, env, popen_kw) -> None:
    global _spawner
    with _lock:
        if _spawner is None or not _spawner.is_alive():
            # one long-lived thread starts every spare: Linux's parent-death signal follows the thread
            # that forked a child, so a spare forked by a short-lived thread would die with that thread
            _spawner = threading.Thread(target=_spawn_loop, name="autoresearch-warm", daemon=True)
            _spawner.start()
    _requests.put((key, env, popen_kw))


def _spawn_loop() -> None:
    while True:
        key, env, popen_kw = _requests.get()
        python, preload, _ = key
        try:
            proc = subprocess.Popen([python, CHILD, *preload], env=env, stdin=subprocess.PIPE, **popen_kw)
        except OSError:
            proc = None
        with _lock:
            _pending[key] = _pending.get(key, 0) - 1
            if _pending[key] <= 0:
                del _pending[key]
            if proc is None:
                continue
            _spares.setdefault(key, []).append(proc)
            _spares[key] = [p for p in _spares[key] if p.poll() is None]
            stale = _spares[key][:-_MAX_SPARES]
            del _spares[key][:-_MAX_SPARES]
            for k in [k for k in _spares if k != key]:     # another environment: its spares will not be used
                stale += _spares.pop(k)
        for p in stale:
            _stop(p)


def _stop(proc: subprocess.Popen) -> None:
    try:
        proc.kill()
        proc.wait(timeout=5)
    except Exception:
        pass


def close() -> None:
    """Stop the spares (they also exit on their own when this process ends)."""
    with _lock:
        procs = [p for waiting in _spares.values() for p in waiting]
        _spares.clear()
    for p in procs:
        _stop(p)


atexit.register(close)
