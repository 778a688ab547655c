"""The real Claude Code and codex CLIs, driven offline by a scripted model server (tests/model_server.py).

`make install-test` installs the pinned CLIs with npm into .npm-cli/ (Claude Code 2.1.197,
codex-cli 0.171.0); without them these tests skip and say so (in CI, where npm is present,
they fail instead). Nothing here reaches the internet: the CLIs talk to 127.0.0.1 only, and
the server records every request, so "no other traffic" is asserted, not assumed.

- claude reads and edits train.py through Read + Edit, is offered only the file tools, keeps
  no transcript, sends nothing but model requests; API 400 and --max-turns; it runs as root
  here (the test machine's user), with acceptEdits;
- codex edits train.py through apply_patch via a custom model provider; a disconnect it
  recovers from keeps the edit; a warning item is not a failure; a fatal turn.failed is;
- both inside a real smoke study, with tokens and cost in the ledger.

Run: .venv/bin/python -m pytest tests/test_agents_cli.py -q
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from autoresearch.agents import Context, get_agent
from autoresearch.errors import AgentError, AgentUnavailable
from autoresearch.sandbox import detect
from tests.fakes import SANDBOXED
from tests.model_server import (DROP, HTTPError, ModelServer, Reply, patch, system_text, text, tool, tool_names,
                                tool_results, usage, working_dir)

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".npm-cli" / "node_modules" / ".bin"
CLAUDE, CODEX = BIN / "claude", BIN / "codex"
TRAIN = "import math\n\nLR = 0.01  # learning rate\nDEPTH = 2  # layers\n\nprint('---')\nprint('val_bpb: 1.0')\n"


def need(binary: Path):
    if binary.exists():
        return str(binary)
    why = f"{binary.name} is not installed in {BIN} (make install-test installs it with npm)"
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "train.py").write_text(TRAIN)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"], cwd=root, check=True)
    return root


def context(root: Path, n: int = 1, sandbox=None) -> Context:
    return Context(root=root, program="Lower val_bpb.", files={"train.py": (root / "train.py").read_text()},
                   editable=("train.py",), trial_number=n, sandbox=sandbox)


@pytest.fixture
def home(monkeypatch):
    """An isolated HOME and CODEX_HOME for the CLIs. Not under /tmp: codex refuses to set up its
    apply_patch helper there, and its sandboxed write then fails. So beside the CLIs, unless this
    checkout is itself under /tmp: then under the user's own home (from the password database: HOME is
    a test folder here already)."""
    base = REPO / ".npm-cli"
    tmp = {Path("/tmp").resolve(), Path(tempfile.gettempdir()).resolve()}
    if any(base.resolve().is_relative_to(t) for t in tmp):
        import pwd
        base = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "autoresearch-test-homes"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="home-", dir=base))
    monkeypatch.setenv("HOME", str(path))
    monkeypatch.setenv("CODEX_HOME", str(path / ".codex"))
    (path / ".codex").mkdir()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-dummy")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy")
    for k in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "CLAUDE_CONFIG_DIR", "CODEX_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def knob_line(text_: str, name: str) -> str:
    return re.search(rf"^{name} = .*$", text_, re.M).group(0)


def bump(line: str, factor: float) -> str:
    name, rest = line.split(" = ", 1)
    value, sep, comment = rest.partition("  #")
    return f"{name} = {float(value) * factor:.4g}{sep}{comment}"


# ---------------------------------------------------------------------------- brains
def claude_editor(name="LR", factor=2.0):
    """Read train.py, Edit one constant, then answer with a DESCRIPTION line."""
    def brain(req):
        body = req["body"]
        if "Edit" not in tool_names(body):              # a side request (title), if any
            return Reply([text('{"title": "tune"}')], usage(50, 5))
        where = working_dir(body) + "/train.py"
        done = tool_results(body)
        if not done:
            return Reply([tool("Read", {"file_path": where})], usage(3000, 20, cached=2000, cache_write=500))
        if len(done) == 1:
            content = str(done[0].get("content"))
            line = knob_line(re.sub(r"^\s*\d+\t", "", content.replace("\\n", "\n"), flags=re.M), name)
            return Reply([tool("Edit", {"file_path": where, "old_string": line, "new_string": bump(line, factor),
                                        "replace_all": False})], usage(3100, 30, cached=2500))
        return Reply([text(f"Done.\nDESCRIPTION: {name} x{factor}")], usage(3200, 15, cached=3000))
    return brain


def codex_editor(name="LR", factor=2.0, drop_first=False, fail=False):
    """apply_patch (or, where the model has no such tool, apply_patch through exec_command), then a message."""
    state = {"n": 0}

    def brain(req):
        state["n"] += 1
        body = req["body"]
        if fail:
            return Reply([], stop="failed")
        if drop_first and state["n"] == 1:
            return DROP
        if tool_results(body):
            return Reply([text(f"Done.\nDESCRIPTION: {name} x{factor}")], usage(3100, 20, cached=2900, reasoning=5))
        prompt = "\n".join(str(i.get("content")) for i in body.get("input") or [] if isinstance(i, dict))
        line = knob_line(prompt.replace("\\n", "\n"), name)
        diff = f"*** Begin Patch\n*** Update File: train.py\n@@\n-{line}\n+{bump(line, factor)}\n*** End Patch"
        if "apply_patch" in tool_names(body):
            return Reply([patch(diff)], usage(3000, 40, cached=2000, reasoning=10))
        return Reply([tool("exec_command", {"cmd": f"apply_patch <<'EOF'\n{diff}\nEOF\n"})], usage(3000, 40))
    return brain


# ---------------------------------------------------------------------------- claude
def test_real_claude_reads_and_edits(repo, home):
    binary = need(CLAUDE)
    with ModelServer(claude_editor()) as s:
        agent = get_agent("claude", binary=binary, base_url=s.url, model="claude-sonnet-4-5", retries=0)
        agent.check()
        p = agent.propose(context(repo))
    assert "LR = 0.02  # learning rate" in (repo / "train.py").read_text()
    assert p.description == "LR x2.0" and not p.invalid
    assert p.extra["tokens"] == {"input": 9300, "cached_input": 7500, "cache_write": 500, "output": 65}
    assert p.tokens_in == 9300 + 7500 + 500 and p.tokens_out == 65 and p.cost_usd > 0
    posts = [r for r in s.requests if r["method"] == "POST"]
    assert {r["path"].split("?")[0] for r in s.requests} <= {"/v1/messages"}   # nothing but the model
    assert all(sorted(tool_names(r["body"])) == ["Edit", "Glob", "Grep", "Read", "Write"] for r in posts)
    assert str(repo.resolve()) in system_text(posts[0]["body"])
    assert not list(home.rglob("*.jsonl"))                                      # no transcript kept
    if os.geteuid() == 0:      # it ran as root (acceptEdits); the flag claude refuses as root is caught first
        with pytest.raises(AgentUnavailable, match="refuses --dangerously-skip-permissions as root"):
            get_agent("claude", binary=binary, extra_args="--dangerously-skip-permissions").check()


def test_real_claude_api_error_and_max_turns(repo, home):
    binary = need(CLAUDE)
    with ModelServer(lambda req: HTTPError(400, "scripted bad request")) as s:
        with pytest.raises(AgentError, match="API 400.*scripted bad request"):
            get_agent("claude", binary=binary, base_url=s.url, retries=0).propose(context(repo))
    with ModelServer(claude_editor()) as s:
        p = get_agent("claude", binary=binary, base_url=s.url, max_turns=1, retries=0).propose(context(repo))
    assert "max-turns 1" in p.invalid and p.tokens_in > 0


# ---------------------------------------------------------------------------- codex
def test_real_codex_applies_a_patch_through_a_custom_provider(repo, home):
    binary = need(CODEX)
    with ModelServer(codex_editor()) as s:
        agent = get_agent("codex", binary=binary, base_url=s.url + "/v1", model="gpt-5.5", retries=0)
        agent.check()
        p = agent.propose(context(repo))
    assert "LR = 0.02  # learning rate" in (repo / "train.py").read_text()
    assert p.description == "LR x2.0" and not p.invalid and not p.extra.get("warnings")
    # input includes cached, output includes reasoning: recorded apart, never added twice
    assert p.extra["tokens"] == {"input": 1200, "cached_input": 4900, "cache_write": 0, "output": 60}
    assert p.extra["reasoning_tokens"] == 15 and p.tokens_out == 60
    assert {r["path"] for r in s.requests} == {"/v1/responses"}       # no plugin sync, no analytics
    assert s.requests[0]["body"]["model"] == "gpt-5.5"
    assert s.requests[0]["headers"]["authorization"] == "Bearer sk-dummy"


def test_real_codex_recovers_from_a_disconnect_and_a_warning_is_no_failure(repo, home):
    binary = need(CODEX)
    with ModelServer(codex_editor(drop_first=True)) as s:
        p = get_agent("codex", binary=binary, base_url=s.url + "/v1", model="gpt-5.5", retries=0).propose(context(repo))
    assert not p.invalid and "LR = 0.02" in (repo / "train.py").read_text()     # the edit is kept
    assert len(s.requests) == 3                                                  # dropped, patch, message
    subprocess.run(["git", "checkout", "-q", "train.py"], cwd=repo, check=True)
    with ModelServer(codex_editor(factor=3.0)) as s:      # a model codex has no metadata for: a warning item
        p = get_agent("codex", binary=binary, base_url=s.url + "/v1", model="local-model", retries=0).propose(
            context(repo))
    assert "Model metadata for `local-model` not found" in p.extra["warnings"][0]
    assert p.description == "LR x3.0" and not p.invalid and "LR = 0.03" in (repo / "train.py").read_text()


def test_real_codex_turn_failed_is_an_agent_error(repo, home):
    binary = need(CODEX)
    with ModelServer(codex_editor(fail=True)) as s:
        with pytest.raises(AgentError, match="scripted failure"):
            get_agent("codex", binary=binary, base_url=s.url + "/v1", model="gpt-5.5", retries=0).propose(
                context(repo))
    assert (repo / "train.py").read_text() == TRAIN


# ---------------------------------------------------------------------------- inside the agents' sandbox
@pytest.mark.skipif(not SANDBOXED, reason="bubblewrap cannot make namespaces here (apt-get install bubblewrap)")
@pytest.mark.parametrize("name", ["claude", "codex"])
def test_real_clis_edit_inside_the_sandbox(repo, home, name):
    """Each CLI, walled in as a study runs it (sandbox.wrap_agent), reaches the model server on
    loopback and edits train.py; the repository's .git is read-only to it."""
    binary = need(CLAUDE if name == "claude" else CODEX)
    brain = claude_editor() if name == "claude" else codex_editor()
    with ModelServer(brain) as s:
        agent = get_agent(name, binary=binary, base_url=s.url + ("" if name == "claude" else "/v1"),
                          model="claude-sonnet-4-5" if name == "claude" else "gpt-5.5", retries=0)
        p = agent.propose(context(repo, sandbox=detect("bwrap")))
    assert "LR = 0.02  # learning rate" in (repo / "train.py").read_text(), p.invalid
    assert p.description == "LR x2.0" and not p.invalid


# ---------------------------------------------------------------------------- a real smoke study
def test_real_clis_in_a_smoke_study(tmp_path, home, monkeypatch):
    """claude proposes trial 1, then the study resumes with codex for trial 2 (one baseline for both)."""
    from autoresearch.config import Config
    from autoresearch.ledger import Ledger
    from autoresearch.study import Study, prepare
    from autoresearch.trial import TrialState
    from autoresearch.workspace import init

    binaries = {"claude": need(CLAUDE), "codex": need(CODEX)}
    monkeypatch.setenv("AUTORESEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AUTORESEARCH_EMBEDDED_LIMIT", "400")
    ws = init(tmp_path / "ws", profile="smoke", tag="cli")
    prepare(ws)
    toml = ws.root / "autoresearch.toml"
    toml.write_text(toml.read_text() + '\n[prices]\n"gpt-5.5" = [1.25, 10.0, 0.125]\n')
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "prices"], cwd=ws.root,
                   check=True)
    for name, model, brain, url in (("claude", "claude-sonnet-4-5", claude_editor("MATRIX_LR", 1.5), ""),
                                    ("codex", "gpt-5.5", codex_editor("MATRIX_LR", 1.5), "/v1")):
        with ModelServer(brain) as s:
            options = {"binary": binaries[name], "base_url": s.url + url, "model": model, "retries": 0}
            Study(ws.root, agent=name, agent_options=options,
                  config=Config.load({"agent": name, "baseline_runs": 1, "max_repeats": 2, "rerun_best": False},
                                     environ={})).optimize(max_trials=1)
    trials = [t for t in Ledger(ws.root, "cli").load() if t.kind != "baseline"]
    assert len(trials) == 2
    for t in trials:
        # a loaded machine can overrun the 3 s smoke budget: the run's fact, not the agent's
        overran = t.state == TrialState.INVALID and t.reason.startswith("trained ")
        assert t.state in (TrialState.KEEP, TrialState.DISCARD) or overran, t.reason
        assert t.description == "MATRIX_LR x1.5" and t.tokens_in > 0 and t.tokens_out > 0 and t.cost_usd > 0
        assert t.extra["knobs"]["MATRIX_LR"] in (0.06, 0.09)           # what was measured: the CLI's edit
    claude, codex = trials
    assert claude.extra["agent"]["tokens"]["cache_write"] == 500                # claude's cost is its own
    # codex: 1200 input, 4900 cached, 60 output at [1.25, 10.0, 0.125] USD per million
    assert codex.cost_usd == pytest.approx((1200 * 1.25 + 4900 * 0.125 + 60 * 10.0) / 1e6)
