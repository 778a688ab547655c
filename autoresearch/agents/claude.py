"""ClaudeAgent: Claude Code headless (`claude -p`) edits the workspace with its file tools.

Command line (run in the workspace, prompt on stdin, own process group):

    claude -p --output-format json --max-turns 30 --permission-mode acceptEdits
           --tools Read,Edit,Write,Glob,Grep --allowedTools Read,Edit,Write,Glob,Grep
           --no-session-persistence [--model MODEL] [extra_args...]

with `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1` (no requests but the model's) and
`ANTHROPIC_BASE_URL` when `base_url` is set. `--tools` is what the model is OFFERED (without
it, 23 tools: Agent, worktrees, cron...); `--allowedTools` only pre-approves. No shell: the
agent can read and edit files, not run training or git. `--no-session-persistence`: no
transcript under ~/.claude/projects per trial. It runs as root too (`acceptEdits` is not
the root-refused `--dangerously-skip-permissions`). Read from its JSON: `result` (the final
message; its `DESCRIPTION:` line is the description), `total_cost_usd`, `usage` (input,
cache-write, cache-read and output tokens, each recorded), `is_error` / `subtype`
(`error_max_turns` gives an invalid proposal; other errors and crashes are retried, then
AgentError). Tested with Claude Code 2.1.197 (tests/test_agents_cli.py).

Options: model, timeout (s, default 1800), max_turns (30), retries (1), extra_args (list or
string), binary ("claude"), max_chars (prompt cap). Login: `ANTHROPIC_API_KEY`,
`CLAUDE_CODE_OAUTH_TOKEN` (`claude setup-token`), or `claude login` (credentials file
`~/.claude/.credentials.json`, or under `$CLAUDE_CONFIG_DIR`; macOS keeps it in the Keychain).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from autoresearch.agents import Agent, Proposal, pricing
from autoresearch.agents.process import agent_env, restore, run, split_args, tail
from autoresearch.errors import AgentError, AgentUnavailable

TOOLS = "Read,Edit,Write,Glob,Grep"


def parse_output(stdout: str) -> dict:
    """The result object of --output-format json (the last JSON line of type 'result')."""
    text = (stdout or "").strip()
    try:
        obj = json.loads(text)
        if isinstance(obj, list):   # some versions print the event list
            obj = next((o for o in reversed(obj) if isinstance(o, dict) and o.get("type") == "result"), None)
        if isinstance(obj, dict):
            return obj
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and ("result" in obj or obj.get("type") == "result"):
            return obj
    raise ValueError("no JSON result object in claude's output")


class ClaudeAgent(Agent):
    name = "claude"

    def __init__(self, model: str | None = None, base_url: str | None = None, timeout: float = 1800.0,
                 max_turns: int = 30, retries: int = 1, extra_args=None, binary: str = "claude",
                 max_chars: int = 60_000, backoff: float = 5.0):
        self.model = model
        self.base_url = base_url         # ANTHROPIC_BASE_URL for the CLI (a proxy or gateway)
        self.timeout = float(timeout)
        self.max_turns = int(max_turns)
        self.retries = int(retries)
        self.extra_args = split_args(extra_args)
        self.binary = binary
        self.max_chars = int(max_chars)
        self.backoff = float(backoff)

    def argv(self) -> list[str]:
        argv = [self.binary, "-p", "--output-format", "json", "--max-turns", str(self.max_turns),
                "--permission-mode", "acceptEdits", "--tools", TOOLS, "--allowedTools", TOOLS,
                "--no-session-persistence"]
        if self.model:
            argv += ["--model", self.model]
        return argv + self.extra_args

    def check(self) -> None:
        if not shutil.which(self.binary):
            raise AgentUnavailable(f"claude: {self.binary!r} is not on PATH; install Claude Code "
                                   f"(npm install -g @anthropic-ai/claude-code) and log in")
        if hasattr(os, "geteuid") and os.geteuid() == 0 and "--dangerously-skip-permissions" in self.extra_args:
            raise AgentUnavailable("claude refuses --dangerously-skip-permissions as root; drop it from extra_args "
                                   "(the default --permission-mode acceptEdits works as root)")
        if os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("CLAUDE_CODE_OAUTH_TOKEN") \
                or os.environ.get("ANTHROPIC_AUTH_TOKEN"):
            return
        config = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
        if (config / ".credentials.json").exists() or (Path.home() / ".claude" / ".credentials.json").exists():
            return
        if sys.platform == "darwin":   # credentials live in the Keychain; cannot check without a call
            return
        raise AgentUnavailable("claude: not logged in: run `claude` once and log in (or `claude setup-token` "
                               "and set CLAUDE_CODE_OAUTH_TOKEN), or set ANTHROPIC_API_KEY")

    def propose(self, context) -> Proposal:
        from autoresearch.agents import prompt as prompt_mod

        text = prompt_mod.build(context, answer="tools", max_chars=self.max_chars)
        env = agent_env({"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "ANTHROPIC_BASE_URL": self.base_url})
        argv = self.argv()
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                restore(context)
                time.sleep(self.backoff * 2 ** (attempt - 1))
            done = run(argv, context.root, self.timeout, env=env, stdin=text, sandbox=context.sandbox,
                       keep=("~/.claude", "~/.claude.json"), hidden=context.hidden)
            if done.timed_out:
                error = f"claude ran past {self.timeout:.0f}s and was killed"
                continue
            try:
                out = parse_output(done.stdout)
            except ValueError:
                error = f"claude exited with {done.returncode} without a JSON result: {tail(done.stderr or done.stdout)}"
                continue
            usage = out.get("usage") or {}
            kinds = pricing.tokens(input=usage.get("input_tokens"), cached_input=usage.get("cache_read_input_tokens"),
                                   cache_write=usage.get("cache_creation_input_tokens"),
                                   output=usage.get("output_tokens"))
            tokens_in = kinds["input"] + kinds["cached_input"] + kinds["cache_write"]
            tokens_out = kinds["output"]
            cost = float(out.get("total_cost_usd") or out.get("cost_usd") or 0.0)
            used = out.get("modelUsage")
            model = self.model or (next(iter(used)) if isinstance(used, dict) and used else "claude")
            extra = {"model": model, "tokens": kinds, "num_turns": out.get("num_turns"),
                     "session_id": out.get("session_id"), "subtype": out.get("subtype"),
                     "seconds": round(done.seconds, 2)}
            subtype = str(out.get("subtype") or "")
            if subtype == "error_max_turns":
                return Proposal(description="", tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost,
                                invalid=f"claude stopped at --max-turns {self.max_turns} before finishing",
                                extra=extra)
            if out.get("is_error") or subtype.startswith("error") or done.returncode != 0:
                status = f"API {out['api_error_status']}, " if out.get("api_error_status") else ""
                error = (f"claude failed ({status}{subtype or 'error'}, exit {done.returncode}): "
                         f"{tail(str(out.get('result') or done.stderr))}")
                continue
            description = prompt_mod.description_from_text(str(out.get("result") or ""))
            return Proposal(description=description or "claude (no description)", tokens_in=tokens_in,
                            tokens_out=tokens_out, cost_usd=cost, extra=extra)
        raise AgentError(f"{error} (after {self.retries + 1} attempts)")
