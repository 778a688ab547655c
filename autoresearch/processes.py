"""Processes: how the tool ends the processes it starts, and keeps them from outliving it.

- `kill_group(pgid)`: a command's process group and every process descended from it, also one
  that left the group (bubblewrap's PID 1 of a sandbox runs in a session of its own). The one
  group kill of the tool: runs, agents' programs, what a killed driver left.
- `dies_with_us()`: the preexec_fn of a child that must die with the tool (PR_SET_PDEATHSIG);
  `die_with_parent(sig)` arms the same signal in a process of the tool's own (a worker).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time


def kill_group(pgid: int, grace: float = 3.0, proc: subprocess.Popen | None = None) -> None:
    """Kill a command's process group and every process descended from it, in the group or not.
    First the group is stopped (SIGSTOP), and its descendants are found and stopped too, to the last
    one: none can fork or slip away while they are looked for. Those outside the group get SIGKILL;
    the group SIGTERM (and SIGCONT), then SIGKILL what is left after grace seconds; last, SIGKILL
    whatever was found that still lives, wherever it went meanwhile. That matters for bubblewrap's
    PID 1 of a sandbox: until it has set itself up it is not bound to its parent's life, it ignores
    SIGTERM (a namespace's init), and it then calls setsid() and leaves the group; a kill of the
    group alone orphaned it and the run inside. Pass the leader's Popen when it is ours: an unreaped
    (zombie) leader would keep the group alive to killpg(0)."""
    found = _stop_tree(pgid)
    for p in found:
        if _group(p) != pgid:
            _kill(p)
    try:
        _kill_group(pgid, grace, proc)
    finally:
        for p in found:
            _kill(p)


def _kill_group(pgid: int, grace: float, proc: subprocess.Popen | None) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
            if sig == signal.SIGTERM:
                os.killpg(pgid, signal.SIGCONT)     # stopped above: let them act on the SIGTERM
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc is not None:
                proc.poll()
            try:
                os.killpg(pgid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)


def _kill(p) -> None:
    try:
        p.kill()            # psutil: only the very process found (a reused pid is left alone)
    except Exception:       # psutil's NoSuchProcess: gone already
        pass


def _group(p) -> int | None:
    try:
        return os.getpgid(p.pid)
    except OSError:
        return None


def _stop_tree(pgid: int) -> list:
    """SIGSTOP the group, then every process descended from its members (checked down to the last:
    a stopped process forks no more); the psutil Processes of all of them, in the group or not."""
    if pgid == os.getpgrp():        # never this process's own group
        return []
    try:
        import psutil
        os.killpg(pgid, signal.SIGSTOP)
    except (ImportError, ProcessLookupError, PermissionError):
        return []
    todo, seen, found = [p for p in psutil.process_iter() if _group(p) == pgid], set(), []
    while todo:
        p = todo.pop()
        if p.pid in seen:
            continue
        seen.add(p.pid)
        try:
            if _group(p) != pgid:
                p.send_signal(signal.SIGSTOP)
            found.append(p)
            todo += p.children()
        except psutil.Error:
            pass
    return found


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """On Linux, get `sig` when the parent process dies (even by kill -9). parent: the pid the parent
    had, for a child between fork and exec: if the tool died before the signal was armed, the child
    exits at once (status 127) rather than run on unowned."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, sig)                  # PR_SET_PDEATHSIG
    except Exception:
        return
    if parent is not None and os.getppid() != parent:
        os._exit(127)


def dies_with_us(sig: int = signal.SIGKILL):
    """The preexec_fn for a child that must not outlive this process (Linux; elsewhere None). Linux
    sends the signal when the *thread* that forked exits: fork from a thread that waits for the child
    or lives as long as the tool."""
    return functools.partial(die_with_parent, sig, os.getpid()) if sys.platform.startswith("linux") else None
