"""CodexAgent: OpenAI Codex CLI (`codex exec`) edits the workspace inside its sandbox.

Command line (run in the workspace, stdin closed, own process group):

    codex exec --json --sandbox workspace-write --color never
               --output-last-message TMP/last.txt [--model MODEL] [extra_args...] PROMPT

`workspace-write` lets it edit files in the workspace only, without network. The JSONL events
on stdout give token usage (`turn.completed` -> `usage.input_tokens`, `cached_input_tokens`,
`output_tokens`) and errors (`error`, `turn.failed`); the final agent message (its
`DESCRIPTION:` line) comes from the --output-last-message file, else the last
`agent_message` item. A crash, a failed turn or a timeout is retried, then AgentError.

Options: model, timeout (s, default 1800), retries (1), extra_args (list or string),
binary ("codex"), max_chars (prompt cap; the prompt is one argument, so keep it < 120 kB).
Login: `codex login` (writes `$CODEX_HOME/auth.json`, default `~/.codex/auth.json`), or
`CODEX_API_KEY` / `OPENAI_API_KEY` in the environment.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from autoresearch.agents import Agent, Proposal
from autoresearch.agents.claude import _args
from autoresearch.agents.command import restore, run_process, tail
from autoresearch.errors import AgentError, AgentUnavailable


def parse_events(stdout: str) -> dict:
    """Sum usage over turns; collect the last agent message and any error from JSONL events."""
    info = {"tokens_in": 0, "tokens_out": 0, "cached": 0, "message": "", "error": "", "turns": 0}
    for line in (stdout or "").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        kind = ev.get("type", "")
        if kind == "turn.completed":
            usage = ev.get("usage") or {}
            info["tokens_in"] += int(usage.get("input_tokens") or 0)
            info["cached"] += int(usage.get("cached_input_tokens") or 0)
            info["tokens_out"] += int(usage.get("output_tokens") or 0) + int(usage.get("reasoning_output_tokens") or 0)
            info["turns"] += 1
        elif kind == "item.completed":
            item = ev.get("item") or {}
            if item.get("type") == "agent_message" and item.get("text"):
                info["message"] = item["text"]
            elif item.get("type") == "error" and item.get("message"):
                info["error"] = item["message"]
        elif kind == "turn.failed":
            info["error"] = ((ev.get("error") or {}).get("message")) or "turn failed"
        elif kind == "error":
            info["error"] = ev.get("message") or "error"
    return info


class CodexAgent(Agent):
    name = "codex"

    def __init__(self, model: str | None = None, base_url: str | None = None, timeout: float = 1800.0,
                 retries: int = 1, extra_args=None, binary: str = "codex", max_chars: int = 60_000,
                 backoff: float = 5.0):
        self.model = model
        self.base_url = base_url         # OPENAI_BASE_URL for the CLI
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.extra_args = _args(extra_args)
        self.binary = binary
        self.max_chars = min(int(max_chars), 120_000)   # one argv string: Linux caps it at 128 kB
        self.backoff = float(backoff)

    def argv(self, last_message: str, prompt: str) -> list[str]:
        argv = [self.binary, "exec", "--json", "--sandbox", "workspace-write", "--color", "never",
                "--output-last-message", last_message]
        if self.model:
            argv += ["--model", self.model]
        return argv + self.extra_args + [prompt]

    def check(self) -> None:
        if not shutil.which(self.binary):
            raise AgentUnavailable(f"codex: {self.binary!r} is not on PATH; install the Codex CLI "
                                   f"(npm install -g @openai/codex) and run `codex login`")
        if os.environ.get("CODEX_API_KEY") or os.environ.get("OPENAI_API_KEY"):
            return
        home = Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")
        if not (home / "auth.json").exists():
            raise AgentUnavailable(f"codex: not logged in ({home / 'auth.json'} missing): run `codex login`, "
                                   f"or set CODEX_API_KEY / OPENAI_API_KEY")

    def propose(self, context) -> Proposal:
        from autoresearch.agents import prompt as prompt_mod

        text = prompt_mod.build(context, answer="tools", max_chars=self.max_chars)
        env = dict(os.environ)
        if self.base_url:
            env["OPENAI_BASE_URL"] = self.base_url
        error = ""
        with tempfile.TemporaryDirectory(prefix="autoresearch-codex-") as tmp:
            last = Path(tmp) / "last_message.txt"
            argv = self.argv(str(last), text)
            for attempt in range(self.retries + 1):
                if attempt:
                    restore(context)
                    last.unlink(missing_ok=True)
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                done = run_process(argv, context.root, self.timeout, env=env)
                if done.timed_out:
                    error = f"codex ran past {self.timeout:.0f}s and was killed"
                    continue
                info = parse_events(done.stdout)
                if done.returncode != 0 or info["error"]:
                    error = (f"codex failed (exit {done.returncode}): "
                             f"{tail(info['error'] or done.stderr or done.stdout)}")
                    continue
                message = last.read_text() if last.exists() else info["message"]
                description = prompt_mod.description_from_text(message)
                return Proposal(description=description or "codex (no description)",
                                tokens_in=info["tokens_in"], tokens_out=info["tokens_out"],
                                extra={"model": self.model or "codex", "cached_input_tokens": info["cached"],
                                       "turns": info["turns"], "seconds": round(done.seconds, 2)})
        raise AgentError(f"{error} (after {self.retries + 1} attempts)")
