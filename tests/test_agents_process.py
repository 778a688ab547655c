"""agents/process.py, agents/pricing.py and codex's event reading, with real processes and real events.

- an agent's process dies with the tool: a tool process running a command agent is killed with
  SIGKILL, and the agent's program (which would edit train.py later) must vanish without editing;
- the group is killed on a timeout and on an exception;
- tokens by kind priced by kind; codex's JSONL as codex 0.171.0 printed it.

Run: .venv/bin/python -m pytest tests/test_agents_process.py -q
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from autoresearch.agents import Proposal, pricing
from autoresearch.agents import process
from autoresearch.agents.codex import parse_events
from autoresearch.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def wait_for(predicate, what: str, bound: float = 60.0):
    """Poll until predicate() is true; the bound only stops a broken test from hanging."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaped yet (it runs no more code either way)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


AGENT = textwrap.dedent("""\
    import os, sys, time, pathlib
    pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))
    time.sleep(float(sys.argv[2]))
    p = pathlib.Path("train.py")
    p.write_text(p.read_text() + "# a late edit\\n")
    print("late edit")
""")

TOOL = textwrap.dedent("""\
    import sys
    from pathlib import Path
    from autoresearch.agents import Context, get_agent
    root, agent, pidfile = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    ctx = Context(root=root, program="", files={"train.py": (root / "train.py").read_text()}, editable=("train.py",))
    get_agent("command", command=[sys.executable, agent, pidfile, "600"], timeout=900).propose(ctx)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_agent_dies_with_the_tool(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "train.py").write_text("LR = 0.01\n")
    (tmp_path / "agent.py").write_text(AGENT)
    (tmp_path / "tool.py").write_text(TOOL)
    pidfile = tmp_path / "agent.pid"
    tool = subprocess.Popen([sys.executable, str(tmp_path / "tool.py"), str(root), str(tmp_path / "agent.py"),
                             str(pidfile)], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), "the agent started"))
        assert not gone(pid)
        tool.send_signal(signal.SIGKILL)                 # the tool dies without any cleanup of its own
        tool.wait()
        wait_for(lambda: gone(pid), "the agent's process died with the tool")
    finally:
        if tool.poll() is None:
            tool.kill()
    assert (root / "train.py").read_text() == "LR = 0.01\n"   # no edit landed after the tool died


def test_timeout_kills_the_whole_group(tmp_path):
    script = ("import os, subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
              f"open({str(tmp_path / 'pids')!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
              "time.sleep(600)\n")
    done = process.run([sys.executable, "-c", script], tmp_path, timeout=2)
    assert done.timed_out and done.returncode == -9
    for pid in map(int, (tmp_path / "pids").read_text().split()):
        wait_for(lambda: gone(pid), f"process {pid} of the group was killed")


def test_an_exception_kills_the_group(tmp_path, monkeypatch):
    pidfile = tmp_path / "pid"
    real = subprocess.Popen.communicate

    def interrupted(self, *a, **kw):
        wait_for(lambda: pidfile.exists() and pidfile.read_text(), "the program started")
        raise KeyboardInterrupt
    monkeypatch.setattr(subprocess.Popen, "communicate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        process.run([sys.executable, "-c", f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); "
                                           "time.sleep(600)"], tmp_path, timeout=600)
    monkeypatch.setattr(subprocess.Popen, "communicate", real)
    wait_for(lambda: gone(int(pidfile.read_text())), "the program was killed")


def test_agent_env_and_spawn_are_the_one_place(tmp_path, monkeypatch):
    monkeypatch.setenv("SOME_TOOL_SETTING", "1")
    env = process.agent_env({"EXTRA": "x", "UNSET": None})
    assert env["EXTRA"] == "x" and "UNSET" not in env and env["SOME_TOOL_SETTING"] == "1"
    proc = process.spawn([sys.executable, "-c", "import os; print(os.getpgid(0) == os.getpid())"], tmp_path, env)
    out, _ = proc.communicate()
    assert out.strip() == "True"                           # it leads its own process group
    done = process.run([sys.executable, "-c", "import sys; sys.exit(3)"], tmp_path, timeout=60)
    assert done.returncode == 3 and not done.timed_out


# ---------------------------------------------------------------------------- pricing
def test_prices_by_token_kind():
    kinds = pricing.tokens(input=1_000_000, cached_input=2_000_000, cache_write=0, output=100_000)
    p = Proposal("x", tokens_in=3_000_000, tokens_out=100_000, extra={"model": "m", "tokens": kinds})
    assert pricing.cost(p, {"m": [1.0, 10.0, 0.1]}) == pytest.approx(1.0 + 0.2 + 1.0)
    assert pricing.cost(p, {"m": [1.0, 10.0]}) == pytest.approx(3.0 + 1.0)      # cached at the input price
    assert pricing.cost(p, {"m": {"input": 1.0, "output": 10.0, "cached_input": 0.5}}) == pytest.approx(3.0)
    assert pricing.cost(p, {}) == 0.0
    assert pricing.cost(Proposal("x", cost_usd=0.25, extra={"model": "m"}), {"m": [1.0, 10.0]}) == 0.25
    old = Proposal("x", tokens_in=1_000_000, tokens_out=0, extra={"model": "m"})   # no kinds: all input
    assert pricing.cost(old, {"m": [2.0, 10.0, 0.1]}) == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="prices"):
        pricing.cost(p, {"m": {"input": 1.0}})


# ---------------------------------------------------------------------------- codex events
# trimmed from codex-cli 0.171.0 against tests/model_server.py
RECOVERED = """\
{"type":"thread.started","thread_id":"01a21cde-5b64-7c80-a936-08d8565dbe9f"}
{"type":"turn.started"}
{"type":"error","message":"Reconnecting... 1/5 (stream disconnected before completion: stream closed before response.completed)"}
{"type":"item.completed","item":{"id":"item_0","type":"file_change","changes":[{"path":"/w/train.py","kind":"update"}],"status":"completed"}}
{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"Raised LR.\\nDESCRIPTION: LR 0.01 -> 0.02"}}
{"type":"turn.completed","usage":{"input_tokens":6100,"cached_input_tokens":4900,"cache_write_input_tokens":0,"output_tokens":60,"reasoning_output_tokens":15}}
"""
WARNED = """\
{"type":"thread.started","thread_id":"01a21cde-8066-77f1-b0e7-32df9475051b"}
{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata for `local-model` not found. Defaulting to fallback metadata; this can degrade performance and cause issues."}}
{"type":"turn.started"}
{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"DESCRIPTION: x"}}
{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":0,"output_tokens":5,"reasoning_output_tokens":0}}
"""
FAILED = """\
{"type":"turn.started"}
{"type":"error","message":"Reconnecting... 5/5 (stream disconnected before completion: scripted failure)"}
{"type":"error","message":"stream disconnected before completion: scripted failure"}
{"type":"turn.failed","error":{"message":"stream disconnected before completion: scripted failure"}}
"""


def test_codex_events_read_as_codex_means_them():
    ok = parse_events(RECOVERED)
    assert not ok["failed"] and ok["changes"] == ["/w/train.py"]
    assert (ok["input"], ok["cached_input"], ok["output"], ok["reasoning"]) == (1200, 4900, 60, 15)
    warned = parse_events(WARNED)
    assert not warned["failed"] and "Model metadata" in warned["warnings"][0]
    failed = parse_events(FAILED)
    assert failed["failed"] and "scripted failure" in failed["error"]
    cut = parse_events(RECOVERED.split('{"type":"item.completed"')[0])     # an error, then nothing
    assert cut["failed"] and "Reconnecting" in cut["error"]
    assert json.loads(RECOVERED.splitlines()[-1])["type"] == "turn.completed"
