"""LLM agent backends without a paid LLM: prompt building and edit application, claude and
codex through stand-in executables (tests/fakebin), the openai and anthropic SDKs against
small local HTTP servers over a real socket, and the command agent with a real script.

Run: .venv/bin/python -m pytest tests/test_agents.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from autoresearch.agents import Context, get_agent
from autoresearch.agents import prompt
from autoresearch.errors import AgentError, AgentUnavailable, ConfigError
from autoresearch.trial import Trial, TrialState

FAKEBIN = Path(__file__).parent / "fakebin"

TRAIN = """\
import torch

LR = 0.01          # learning rate
DEPTH = 2          # transformer layers

def train():
    for step in range(10):
        loss = step * LR
    print("---")
    print(f"val_bpb: {loss}")
"""


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "train.py").write_text(TRAIN)
    (root / "prepare.py").write_text("EVAL_TOKENS = 1000  # read-only\n")
    (root / "program.md").write_text("Make val_bpb lower.\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(git + ["add", "-A"], cwd=root, check=True)
    subprocess.run(git + ["commit", "-qm", "base"], cwd=root, check=True)
    return root


def trial(n, state, value, desc):
    return Trial(number=n, state=TrialState(state), description=desc, value=value, commit="c%d" % n if value else "")


def make_context(root, history=(), best=None, **kw):
    return Context(root=root, program="Make val_bpb lower.", files={"train.py": (root / "train.py").read_text()},
                   editable=("train.py",), readonly=("prepare.py",), history=tuple(history), best=best,
                   trial_number=len(history), **kw)


def git_diff(root) -> str:
    return subprocess.run(["git", "diff", "--name-only"], cwd=root, capture_output=True, text=True).stdout.split()


@pytest.fixture
def fakebin(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}")
    argv_file = tmp_path / "argv.json"
    monkeypatch.setenv("FAKE_ARGV_FILE", str(argv_file))
    return argv_file


# ---------------------------------------------------------------------------- prompt
def test_prompt_has_every_section(repo):
    history = [trial(0, "keep", 1.50, "baseline"), trial(1, "discard", 1.52, "depth 3"),
               trial(2, "crash", None, "huge batch OOM"), trial(3, "keep", 1.45, "lr 0.02"),
               trial(4, "discard", 1.46, "warmup 10%")]
    ctx = make_context(repo, history, best=history[3], noise_sd=0.006, last_failure="Traceback\nRuntimeError: CUDA OOM")
    text = prompt.build(ctx)
    for needle in ("Make val_bpb lower.", "LR = 0.01", "huge batch OOM", "crash", "Best so far", "lr 0.02",
                   "Near misses", "warmup 10%", "sd 0.006", "RuntimeError: CUDA OOM", "do not run training",
                   "do not commit", "prepare.py", '"edits"'):
        assert needle in text, needle
    near = text.split("Near misses")[1]
    assert near.index("warmup 10%") < near.index("depth 3")   # closest to the best first
    tools = prompt.build(ctx, answer="tools")
    assert "DESCRIPTION:" in tools and '"edits"' not in tools


def test_prompt_history_truncated_and_capped(repo):
    history = [trial(i, "discard", 2.0 + i / 1000, f"idea number {i}") for i in range(1, 100)]
    best = trial(0, "keep", 1.9, "the original baseline")
    ctx = make_context(repo, [best] + history, best=best, last_failure="x" * 50_000)
    text = prompt.build(ctx)
    assert "idea number 99" in text and "idea number 70" in text
    assert "idea number 60 " not in text.split("Near misses")[0]   # older rows dropped from the table
    assert "the original baseline" in text                         # best kept though it is old
    assert "x" * 2001 not in text                                  # log tail bounded
    big = make_context(repo, [best] + history, best=best)
    big = Context(**{**big.__dict__, "files": {"train.py": TRAIN * 400}})
    small = prompt.build(big, max_chars=6000)
    assert len(small) <= 6500 and "characters left out" in small and "LR = 0.01" in small


# ---------------------------------------------------------------------------- parse + apply
def test_parse_answer_forms():
    d, e = prompt.parse_answer('{"description": "lr up", "edits": [{"file": "train.py", "search": "a", "replace": "b"}]}')
    assert d == "lr up" and e[0]["replace"] == "b"
    d, e = prompt.parse_answer('Sure!\n```json\n{"description": "x", "edits": {"file": "train.py", "search": "a", "replace": "b"}}\n```')
    assert d == "x" and len(e) == 1
    blocks = ("DESCRIPTION: deeper model\ntrain.py\n<<<<<<< SEARCH\nDEPTH = 2\n=======\nDEPTH = 3\n>>>>>>> REPLACE\n")
    d, e = prompt.parse_answer(blocks)
    assert d == "deeper model" and e == [{"file": "train.py", "search": "DEPTH = 2", "replace": "DEPTH = 3"}]
    for bad in ("", "no json here", '{"description": "", "edits": []}', '{"description": "x", "edits": [{"file": 1}]}'):
        with pytest.raises(prompt.AnswerError):
            prompt.parse_answer(bad)


def test_apply_edits_exact_and_whitespace_tolerant(repo):
    ctx = make_context(repo)
    changed = prompt.apply_edits(ctx, [{"file": "./train.py", "search": "LR = 0.01", "replace": "LR = 0.02"}])
    assert changed == ["train.py"] and "LR = 0.02" in (repo / "train.py").read_text()
    # wrong indentation and trailing spaces in the search text: matched by lines, re-indented
    prompt.apply_edits(ctx, [{"file": "train.py", "search": "for step in range(10):  \n    loss = step * LR",
                              "replace": "for step in range(20):\n    loss = step * LR * 0.5"}])
    text = (repo / "train.py").read_text()
    assert "    for step in range(20):\n        loss = step * LR * 0.5\n" in text
    compile(text, "train.py", "exec")


@pytest.mark.parametrize("edit,why", [
    ({"file": "prepare.py", "search": "EVAL_TOKENS = 1000", "replace": "EVAL_TOKENS = 1"}, "only these files"),
    ({"file": "../train.py", "search": "LR", "replace": "X"}, "only these files"),
    ({"file": "train.py", "search": "NOT THERE", "replace": "x"}, "not found"),
    ({"file": "train.py", "search": "print(", "replace": "log("}, "occurs 2 times"),
    ({"file": "train.py", "search": "LR = 0.01", "replace": "LR = 0.01"}, "change nothing"),
])
def test_apply_edits_rejects_bad_edits(repo, edit, why):
    with pytest.raises(prompt.AnswerError, match=why):
        prompt.apply_edits(make_context(repo), [edit])
    assert git_diff(repo) == []


def test_apply_edits_all_or_none(repo):
    with pytest.raises(prompt.AnswerError, match="edit 2"):
        prompt.apply_edits(make_context(repo), [{"file": "train.py", "search": "LR = 0.01", "replace": "LR = 0.1"},
                                                {"file": "train.py", "search": "nope", "replace": "x"}])
    assert (repo / "train.py").read_text() == TRAIN


# ---------------------------------------------------------------------------- claude
def test_claude_runs_headless_and_reads_json(repo, fakebin):
    agent = get_agent("claude", model="claude-sonnet-4-5", max_turns=7, extra_args="--verbose")
    p = agent.propose(make_context(repo))
    rec = json.loads(fakebin.read_text())
    assert rec["argv"] == ["-p", "--output-format", "json", "--max-turns", "7", "--permission-mode", "acceptEdits",
                           "--tools", "Read,Edit,Write,Glob,Grep", "--allowedTools", "Read,Edit,Write,Glob,Grep",
                           "--no-session-persistence", "--model", "claude-sonnet-4-5", "--verbose"]
    assert Path(rec["cwd"]).resolve() == repo.resolve() and "LR = 0.01" in rec["stdin"]
    assert p.description == "raise LR to 0.02" and not p.invalid
    assert (p.tokens_in, p.tokens_out, p.cost_usd) == (2000, 250, 0.0123)
    assert p.extra["tokens"] == {"input": 1200, "cached_input": 500, "cache_write": 300, "output": 250}
    assert p.extra["model"] == "claude-sonnet-4-5" and git_diff(repo) == ["train.py"]


def test_claude_max_turns_is_invalid(repo, fakebin, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "max_turns")
    p = get_agent("claude").propose(make_context(repo))
    assert "max-turns" in p.invalid and p.cost_usd == 0.0123


@pytest.mark.parametrize("mode,why", [("error", "overloaded"), ("malformed", "without a JSON result"),
                                      ("crash", "Segmentation fault")])
def test_claude_failures_raise_agent_error_after_retries(repo, fakebin, monkeypatch, mode, why):
    monkeypatch.setenv("FAKE_MODE", mode)
    with pytest.raises(AgentError, match=why) as e:
        get_agent("claude", retries=1, backoff=0).propose(make_context(repo))
    assert "after 2 attempts" in str(e.value)


def test_claude_retries_a_crash_then_succeeds(repo, fakebin, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_MODE", "flaky")
    monkeypatch.setenv("FAKE_STATE_FILE", str(tmp_path / "state"))
    p = get_agent("claude", retries=1, backoff=0).propose(make_context(repo))
    assert p.description == "raise LR to 0.02" and (tmp_path / "state").read_text() == "xx"


def test_claude_timeout_kills_process_group(repo, fakebin, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_MODE", "hang")
    monkeypatch.setenv("FAKE_PID_FILE", str(tmp_path / "pid"))
    start = time.monotonic()
    with pytest.raises(AgentError, match="ran past 1s"):
        get_agent("claude", timeout=1, retries=0).propose(make_context(repo))
    assert time.monotonic() - start < 10
    pid = int((tmp_path / "pid").read_text())
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_claude_check(monkeypatch, tmp_path, fakebin):
    for k in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CONFIG_DIR"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(AgentUnavailable, match="not logged in"):
        get_agent("claude").check()
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude" / ".credentials.json").write_text("{}")
    get_agent("claude").check()
    with pytest.raises(AgentUnavailable, match="not on PATH"):
        get_agent("claude", binary="claude-does-not-exist").check()


# ---------------------------------------------------------------------------- codex
def test_codex_exec_json_events(repo, fakebin):
    p = get_agent("codex", model="gpt-5.5", extra_args=["-c", "model_reasoning_effort=low"]).propose(make_context(repo))
    rec = json.loads(fakebin.read_text())
    argv = rec["argv"]
    assert argv[:10] == ["exec", "--json", "--sandbox", "workspace-write", "--color", "never",
                         "--disable", "plugins", "-c", "analytics.enabled=false"]
    assert argv[10] == "--output-last-message" and argv[12:16] == ["-m", "gpt-5.5", "-c", "model_reasoning_effort=low"]
    assert "LR = 0.01" in argv[-1] and rec["stdin"] == "" and Path(rec["cwd"]).resolve() == repo.resolve()
    assert not Path(argv[11]).exists()   # temp file cleaned up, never inside the repo
    assert p.description == "cosine schedule with warmup 5%" and (p.tokens_in, p.tokens_out) == (2000, 300)
    assert p.extra["tokens"] == {"input": 500, "cached_input": 1500, "cache_write": 0, "output": 300}
    assert p.extra["model"] == "gpt-5.5" and git_diff(repo) == ["train.py"]


@pytest.mark.parametrize("mode,why", [("failed", "usage limit"), ("crash", "panicked")])
def test_codex_failures(repo, fakebin, monkeypatch, mode, why):
    monkeypatch.setenv("FAKE_MODE", mode)
    with pytest.raises(AgentError, match=why):
        get_agent("codex", retries=1, backoff=0).propose(make_context(repo))


def test_codex_check(monkeypatch, tmp_path, fakebin):
    for k in ("CODEX_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex"))
    with pytest.raises(AgentUnavailable, match="codex login"):
        get_agent("codex").check()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")      # codex's own provider does not send it
    with pytest.raises(AgentUnavailable, match="does not send OPENAI_API_KEY"):
        get_agent("codex").check()
    get_agent("codex", base_url="http://127.0.0.1:9/v1").check()   # a custom provider sends it
    monkeypatch.setenv("CODEX_API_KEY", "sk-test")
    get_agent("codex").check()
    monkeypatch.delenv("CODEX_API_KEY")
    (tmp_path / "codex").mkdir()
    (tmp_path / "codex" / "auth.json").write_text("{}")
    get_agent("codex").check()


# ---------------------------------------------------------------------------- fake HTTP servers
class Server:
    """A scripted HTTP server on 127.0.0.1 in a thread: each request pops the next reply."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                outer.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                reply = outer.replies.pop(0) if len(outer.replies) > 1 else outer.replies[0]
                status, payload = reply(body) if callable(reply) else reply
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("retry-after-ms", "10")
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    made = []

    def start(replies):
        made.append(Server(replies))
        return made[-1]
    yield start
    for s in made:
        s.close()


GOOD = {"description": "raise the learning rate", "edits": [{"file": "train.py", "search": "LR = 0.01", "replace": "LR = 0.02"}]}
BAD = {"description": "oops", "edits": [{"file": "train.py", "search": "LR = 9.99", "replace": "LR = 1"}]}


def chat(content, prompt_tokens=100, completion_tokens=20):
    return 200, {"id": "c1", "object": "chat.completion", "created": 0, "model": "fake-model",
                 "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
                 "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                           "total_tokens": prompt_tokens + completion_tokens}}


def llama_like(content):
    """Like llama.cpp's server: json_schema is rejected with HTTP 500."""
    def reply(body):
        if (body.get("response_format") or {}).get("type") == "json_schema":
            return 500, {"error": {"message": "Input should be 'text' or 'json_object'", "code": 500}}
        return chat(content)
    return reply


# ---------------------------------------------------------------------------- openai
def test_openai_falls_back_to_json_object_and_remembers(repo, server):
    s = server([llama_like(json.dumps(GOOD))])
    agent = get_agent("openai", base_url=s.url + "/v1", model="smol", retries=0)
    agent.check()                                    # a local server needs no key
    p = agent.propose(make_context(repo))
    assert p.description == "raise the learning rate" and not p.invalid
    assert (p.tokens_in, p.tokens_out) == (100, 20) and p.extra["model"] == "smol"
    assert [r["body"]["response_format"]["type"] for r in s.requests] == ["json_schema", "json_object"]
    assert s.requests[1]["body"]["response_format"]["schema"]["required"] == ["description", "edits"]
    assert "LR = 0.02" in (repo / "train.py").read_text()
    subprocess.run(["git", "checkout", "-q", "train.py"], cwd=repo, check=True)
    agent.propose(make_context(repo))
    assert s.requests[2]["body"]["response_format"]["type"] == "json_object"   # remembered


def test_openai_corrective_retry_then_valid(repo, server):
    s = server([chat("I think we should raise LR."), chat(json.dumps(GOOD))])
    p = get_agent("openai", base_url=s.url + "/v1", response_format="text", mode="edits").propose(make_context(repo))
    assert not p.invalid and (p.tokens_in, p.tokens_out) == (200, 40)
    second = s.requests[1]["body"]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"] and "not valid JSON" in second[2]["content"]


def test_openai_malformed_twice_is_invalid(repo, server):
    s = server([chat(json.dumps(BAD)), chat(json.dumps(BAD))])
    p = get_agent("openai", base_url=s.url + "/v1", response_format="json_object", mode="edits").propose(
        make_context(repo))
    assert p.invalid.startswith("malformed answer") and "not found" in p.invalid and len(s.requests) == 2
    assert (repo / "train.py").read_text() == TRAIN and p.tokens_in == 200


def test_openai_retries_transient_500(repo, server):
    s = server([(500, {"error": {"message": "boom"}}), (429, {"error": {"message": "slow down"}}), chat(json.dumps(GOOD))])
    p = get_agent("openai", base_url=s.url + "/v1", response_format="json_schema", retries=3).propose(make_context(repo))
    assert not p.invalid and len(s.requests) == 3


def test_openai_persistent_failure_is_agent_error(repo, server):
    s = server([(503, {"error": {"message": "down for maintenance"}})])
    with pytest.raises(AgentError, match="maintenance"):
        get_agent("openai", base_url=s.url + "/v1", response_format="json_object", retries=1).propose(make_context(repo))
    assert len(s.requests) == 2


def test_openai_check_and_options(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(AgentUnavailable, match="OPENAI_API_KEY"):
        get_agent("openai").check()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    get_agent("openai").check()
    with pytest.raises(ConfigError):
        get_agent("openai", no_such_option=1)
    with pytest.raises(ConfigError):
        get_agent("openai", response_format="xml")


# ---------------------------------------------------------------------------- anthropic
def message(tool_input, input_tokens=300, output_tokens=40):
    return 200, {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
                 "content": [{"type": "tool_use", "id": "toolu_1", "name": "propose_change", "input": tool_input}],
                 "stop_reason": "tool_use", "stop_sequence": None,
                 "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}


def test_anthropic_tool_answer_with_correction_and_retry(repo, server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    s = server([(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                message(BAD), message(GOOD)])
    agent = get_agent("anthropic", base_url=s.url, model="claude-test", retries=2, mode="edits")
    agent.check()
    p = agent.propose(make_context(repo))
    assert p.description == "raise the learning rate" and not p.invalid
    assert (p.tokens_in, p.tokens_out) == (600, 80) and p.extra["model"] == "claude-test"
    headers = s.requests[0]["headers"]
    assert len(s.requests) == 3 and "sk-ant-test" in headers.get("x-api-key", "") + headers.get("authorization", "")
    body = s.requests[2]["body"]
    assert body["tool_choice"] == {"type": "tool", "name": "propose_change"}
    result = body["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] and "not found" in result["content"]
    assert "LR = 0.02" in (repo / "train.py").read_text()


def test_anthropic_check(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with pytest.raises(AgentUnavailable, match="ANTHROPIC_API_KEY"):
        get_agent("anthropic").check()


# ---------------------------------------------------------------------------- command
SCRIPT = """\
import os, pathlib, sys
prompt = pathlib.Path(sys.argv[1]).read_text()
assert os.environ["AUTORESEARCH_PROMPT_FILE"] == sys.argv[1]
assert "LR = 0.01" in prompt and "DESCRIPTION:" in prompt
p = pathlib.Path("train.py")
p.write_text(p.read_text().replace("DEPTH = 2", "DEPTH = 3"))
print("thinking...")
print(f"deeper model (trial {os.environ['AUTORESEARCH_TRIAL']}, {os.environ['AUTORESEARCH_EDITABLE']})")
print("")
"""


def test_command_agent_runs_a_real_script(repo, tmp_path):
    script = tmp_path / "agent.py"
    script.write_text(SCRIPT)
    agent = get_agent("command", command=f"{sys.executable} {script} {{prompt_file}}")
    agent.check()
    history = [trial(0, "keep", 1.5, "baseline"), trial(1, "discard", 1.6, "x")]
    p = agent.propose(make_context(repo, history))
    assert p.description == "deeper model (trial 2, train.py)" and "DEPTH = 3" in (repo / "train.py").read_text()
    assert git_diff(repo) == ["train.py"] and not list(repo.glob("*prompt*"))


def test_command_agent_failures(repo, tmp_path):
    with pytest.raises(AgentError, match="exited with 3"):
        get_agent("command", command=f"{sys.executable} -c 'import sys; sys.exit(3)'").propose(make_context(repo))
    with pytest.raises(AgentError, match="ran past"):
        get_agent("command", command=f"{sys.executable} -c 'import time; time.sleep(60)'", timeout=1).propose(make_context(repo))
    with pytest.raises(AgentUnavailable, match="needs a program"):
        get_agent("command").check()
    with pytest.raises(AgentUnavailable, match="not on PATH"):
        get_agent("command", command="no-such-program --go").check()
