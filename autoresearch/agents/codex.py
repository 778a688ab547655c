"""CodexAgent: OpenAI Codex CLI (`codex exec`) edits the workspace inside its sandbox.

Command line (run in the workspace, stdin closed, through agents/process.py):

    codex exec --json --sandbox workspace-write --color never
               --disable plugins -c analytics.enabled=false
               --output-last-message TMP/last.txt [-m MODEL]
               [-c model_provider=autoresearch -c 'model_providers.autoresearch={...}']
               [extra_args...] PROMPT

`workspace-write` lets it edit files in the workspace only, without network. Inside the tool's
agent sandbox (sandbox.wrap_agent), where codex's own bubblewrap cannot nest, it runs with
`danger-full-access` and the tool's walls confine it (checkout writable, the rest read-only). No plugin sync
and no analytics: the model's requests are its only traffic. `base_url` becomes a custom
model provider (`base_url`, `wire_api = "responses"`, `env_key`): codex ignores
`OPENAI_BASE_URL`. The JSONL events on stdout are read as codex means them:

- `turn.completed` -> `usage`: input (which includes cached), cached input, output (which
  includes reasoning); recorded by kind and priced by kind (agents/pricing.py);
- `item.completed` of type `error` is a WARNING (unknown model metadata, a WebSocket
  fallback): recorded, not a failure;
- a top-level `error` ("Reconnecting... 1/5") is a failure only if no `turn.completed`
  follows it; `turn.failed` or a non-zero exit is a failure (retried, then AgentError);
- a `file_change` item that failed, with no editable file changed, is an invalid proposal
  whose reason says so (codex could not write: its sandbox, or a CODEX_HOME under /tmp).

The final agent message (its `DESCRIPTION:` line) comes from the --output-last-message file,
else the last `agent_message` item.

Options: model (from `codex debug models --bundled`, e.g. gpt-6.2-sol, gpt-5.5), base_url,
api_key_env (the variable the custom provider sends, default OPENAI_API_KEY), timeout (s,
default 1800), retries (1), extra_args (list or string), binary ("codex"), max_chars (prompt
cap; the prompt is one argument, so < 120 kB). Login for the built-in provider: `codex login`
(`$CODEX_HOME/auth.json`, default ~/.codex) or `CODEX_API_KEY`; codex does not send
`OPENAI_API_KEY`. Tested with codex-cli 0.171.0 (tests/test_agents_cli.py).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from autoresearch.agents import Agent, Proposal, pricing
from autoresearch.agents.process import agent_env, restore, run, split_args, tail
from autoresearch.errors import AgentError, AgentUnavailable

PROVIDER = "autoresearch"


def parse_events(stdout: str) -> dict:
    """Usage by kind summed over turns, the last agent message, warnings, file changes, the failure if any."""
    info = {"input": 0, "cached_input": 0, "cache_write": 0, "output": 0, "reasoning": 0, "turns": 0,
            "message": "", "warnings": [], "changes": [], "failed_changes": [], "error": "", "failed": False}
    pending = ""           # an error event not (yet) followed by a completed turn
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
            total = int(usage.get("input_tokens") or 0)
            cached = int(usage.get("cached_input_tokens") or 0)
            write = int(usage.get("cache_write_input_tokens") or 0)
            info["input"] += max(total - cached - write, 0)
            info["cached_input"] += cached
            info["cache_write"] += write
            info["output"] += int(usage.get("output_tokens") or 0)     # already includes reasoning
            info["reasoning"] += int(usage.get("reasoning_output_tokens") or 0)
            info["turns"] += 1
            pending = ""
        elif kind == "turn.failed":
            info["failed"] = True
            info["error"] = ((ev.get("error") or {}).get("message")) or pending or "turn failed"
        elif kind == "error":
            pending = ev.get("message") or "error"
        elif kind == "item.completed":
            item = ev.get("item") or {}
            if item.get("type") == "agent_message" and item.get("text"):
                info["message"] = item["text"]
            elif item.get("type") == "error":
                info["warnings"].append(item.get("message") or "")
            elif item.get("type") == "file_change":
                paths = [c.get("path", "") for c in item.get("changes") or []]
                key = "changes" if item.get("status") == "completed" else "failed_changes"
                info[key] += paths
    if pending and not info["failed"]:
        info["failed"], info["error"] = True, pending
    return info


class CodexAgent(Agent):
    name = "codex"

    def __init__(self, model: str | None = None, base_url: str | None = None, timeout: float = 1800.0,
                 retries: int = 1, extra_args=None, binary: str = "codex", max_chars: int = 60_000,
                 backoff: float = 5.0, api_key_env: str = "OPENAI_API_KEY"):
        self.model = model
        self.base_url = base_url         # becomes a custom model provider
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.extra_args = split_args(extra_args)
        self.binary = binary
        self.max_chars = min(int(max_chars), 120_000)   # one argv string: Linux caps it at 128 kB
        self.backoff = float(backoff)

    def argv(self, last_message: str, prompt: str, walled: bool = False) -> list[str]:
        """walled: it runs inside the tool's agent sandbox, where codex's own (bubblewrap, which
        needs capabilities the walls take away) cannot nest: ours confines its writes instead."""
        mode = "danger-full-access" if walled else "workspace-write"
        argv = [self.binary, "exec", "--json", "--sandbox", mode, "--color", "never",
                "--disable", "plugins", "-c", "analytics.enabled=false", "--output-last-message", last_message]
        if self.model:
            argv += ["-m", self.model]
        if self.base_url:
            spec = (f'{{name="{PROVIDER}", base_url={json.dumps(self.base_url)}, wire_api="responses", '
                    f'env_key="{self.api_key_env}"}}')
            argv += ["-c", f"model_provider={PROVIDER}", "-c", f"model_providers.{PROVIDER}={spec}"]
        return argv + self.extra_args + [prompt]

    def check(self) -> None:
        if not shutil.which(self.binary):
            raise AgentUnavailable(f"codex: {self.binary!r} is not on PATH; install the Codex CLI "
                                   f"(npm install -g @openai/codex) and run `codex login`")
        if self.base_url:      # the custom provider sends ${api_key_env}; a local server needs none
            return
        if os.environ.get("CODEX_API_KEY"):
            return
        home = Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")
        if (home / "auth.json").exists():
            return
        hint = (" (codex does not send OPENAI_API_KEY: `printenv OPENAI_API_KEY | codex login --with-api-key`, "
                "or export CODEX_API_KEY)") if os.environ.get("OPENAI_API_KEY") else ""
        raise AgentUnavailable(f"codex: not logged in ({home / 'auth.json'} missing): run `codex login`, "
                               f"or set CODEX_API_KEY{hint}")

    def _env(self) -> dict:
        extra = {}
        if self.base_url and not os.environ.get(self.api_key_env):
            extra[self.api_key_env] = "not-needed"     # codex refuses a provider whose key variable is unset
        return agent_env(extra)

    def propose(self, context) -> Proposal:
        from autoresearch.agents import prompt as prompt_mod

        text = prompt_mod.build(context, answer="tools", max_chars=self.max_chars)
        env = self._env()
        error = ""
        with tempfile.TemporaryDirectory(prefix="autoresearch-codex-") as tmp:
            last = Path(tmp) / "last_message.txt"
            argv = self.argv(str(last), text, walled=bool(context.sandbox and context.sandbox.enforced))
            for attempt in range(self.retries + 1):
                if attempt:
                    restore(context)
                    last.unlink(missing_ok=True)
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                done = run(argv, context.root, self.timeout, env=env, sandbox=context.sandbox,
                           keep=(os.environ.get("CODEX_HOME") or "~/.codex",), hidden=context.hidden,
                           writable=(tmp,))
                if done.timed_out:
                    error = f"codex ran past {self.timeout:.0f}s and was killed"
                    continue
                info = parse_events(done.stdout)
                if done.returncode != 0 or info["failed"]:
                    error = (f"codex failed (exit {done.returncode}): "
                             f"{tail(info['error'] or done.stderr or done.stdout)}")
                    continue
                return self._proposal(context, info, last, done.seconds)
        raise AgentError(f"{error} (after {self.retries + 1} attempts)")

    def _proposal(self, context, info, last: Path, seconds: float) -> Proposal:
        from autoresearch.agents import prompt as prompt_mod

        message = last.read_text() if last.exists() else info["message"]
        kinds = pricing.tokens(input=info["input"], cached_input=info["cached_input"],
                               cache_write=info["cache_write"], output=info["output"])
        extra = {"model": self.model or "codex", "tokens": kinds, "reasoning_tokens": info["reasoning"],
                 "turns": info["turns"], "seconds": round(seconds, 2)}
        if info["warnings"]:
            extra["warnings"] = info["warnings"][:5]
        invalid = ""
        root = Path(context.root)
        unchanged = all((root / n).exists() and (root / n).read_text() == t for n, t in context.files.items())
        if info["failed_changes"] and unchanged:
            extra["failed_changes"] = info["failed_changes"][:5]
            invalid = ("codex could not write its change (file_change failed): its sandbox refused the write; "
                       "a CODEX_HOME under /tmp does that")
        description = prompt_mod.description_from_text(message)
        return Proposal(description=description or "codex (no description)", invalid=invalid,
                        tokens_in=kinds["input"] + kinds["cached_input"] + kinds["cache_write"],
                        tokens_out=kinds["output"], extra=extra)
