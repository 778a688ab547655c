"""Process: how the subprocess agents (command, claude, codex) run their program.

Three things live here and nowhere else:

- `agent_env(extra)`: the environment an agent's program gets (the one place to restrict it).
- `spawn(argv, cwd, env, stdin)`: the one place an agent's process is started (the place to
  wrap it in a sandbox). The process leads its own process group, and on Linux it gets
  `PR_SET_PDEATHSIG = SIGKILL` (set in `preexec_fn`), so it dies with the tool: a tool killed
  with SIGKILL cannot leave an agent behind that lands an edit later. Linux sends that signal
  when the *thread* that forked exits; `run` blocks that thread until the process ends, so
  that is the same moment. Grandchildren that the program starts are not covered by the
  signal (a PID-namespace sandbox with --die-with-parent covers them); they are covered by
  processes.kill_group on a timeout, an exception or the program's exit: the group and every
  process descended from it, also those in a session of their own (the sandbox's PID 1).
- `run(argv, cwd, timeout, env, stdin)`: spawn, wait, and kill the whole group past the
  timeout or on any exception (Ctrl-C included); returns `Completed`, never raises for a
  crash of the program.

Also `tail` (a bounded one-line excerpt of output for error messages) and `restore` (put the
editable files back before a retry).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from autoresearch import processes
from autoresearch.errors import AgentError



@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float


def agent_env(extra: dict | None = None, base: dict | None = None) -> dict:
    """The environment of an agent's program: `base` (default: the tool's environment) plus `extra`."""
    env = dict(os.environ if base is None else base)
    env.update({k: str(v) for k, v in (extra or {}).items() if v is not None})
    return env


def spawn(argv: list[str], cwd, env: dict, stdin: bool = False) -> subprocess.Popen:
    """Start an agent's program: own process group, killed with the tool (Linux), pipes for output."""
    try:
        return subprocess.Popen(argv, cwd=str(cwd), env=env, text=True, start_new_session=True,
                                preexec_fn=processes.dies_with_us(),
                                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise AgentError(f"cannot start {argv[0]}: {e}") from e


def kill_group(proc: subprocess.Popen) -> None:
    """Kill the program's group and everything descended from it (processes.kill_group); waits for it."""
    processes.kill_group(proc.pid, grace=3.0, proc=proc)
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        pass


def run(argv: list[str], cwd, timeout: float, env: dict | None = None, stdin: str | None = None,
        sandbox=None, keep=(), hidden=(), writable=()) -> Completed:
    """Run argv in its own process group; past `timeout` seconds, or on any exception, kill the group.
    sandbox: a Sandbox (autoresearch/sandbox.py) to run it in (`wrap_agent`: keep, hidden, writable),
    with a TMPDIR of its own; None or an unenforced one: as it is."""
    start = time.monotonic()
    env = dict(env if env is not None else agent_env())
    tmp = None
    if sandbox is not None and sandbox.enforced:
        tmp = tempfile.mkdtemp(prefix="autoresearch-agent-tmp-")
        env.update(TMPDIR=tmp, TMP=tmp, TEMP=tmp)
        argv = sandbox.wrap_agent(argv, cwd, keep=keep, hidden=hidden, writable=(tmp, *writable))
    try:
        proc = spawn(argv, cwd, env, stdin=stdin is not None)
        timed_out = False
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            out, err = proc.communicate()
            timed_out = True
        except BaseException:
            kill_group(proc)
            raise
        finally:
            if proc.poll() is None:
                kill_group(proc)
        if not timed_out:       # a program that exits may leave children behind
            processes.kill_group(proc.pid, grace=0.5, proc=proc)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return Completed(-9 if timed_out else proc.returncode, out or "", err or "", timed_out,
                     time.monotonic() - start)


def tail(text: str, n: int = 400) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else "..." + text[-n:]


def restore(context) -> None:
    """Put the editable files back as the context gave them (before a retry)."""
    root = Path(context.root)
    for name, text in context.files.items():
        path = root / name
        if path.exists() and path.read_text() != text:
            path.write_text(text)


def split_args(extra) -> list[str]:
    """extra_args as given in a toml (a list) or on the command line (one shell-quoted string)."""
    import shlex
    if not extra:
        return []
    return shlex.split(extra) if isinstance(extra, str) else [str(a) for a in extra]
