"""AnthropicAgent: the Anthropic Messages API (or a server speaking it) via the `anthropic` SDK.

The model answers in one of the forms of answers.py (option `mode`: edits, knobs, moves, or
auto = edits, then knobs on the correction) through a forced tool call whose input schema is
the form's schema; with `tools=false` it answers in text, parsed the same way. A bad answer
gets one corrective retry (a tool_result with is_error), then an invalid Proposal; an answer
stopped at max_tokens is reported as cut. Transient errors (429, 5xx, overloaded,
connection) are retried by the SDK with exponential backoff (`retries`), then AgentError.
Input, cache-read, cache-write and output tokens are recorded apart (priced by kind).

Options (or env): model (ANTHROPIC_MODEL, default claude-sonnet-4-5), base_url
(ANTHROPIC_BASE_URL), api_key (ANTHROPIC_API_KEY, or ANTHROPIC_AUTH_TOKEN), mode (auto),
context_tokens, max_tokens (default 4096 for edits, 256 for knobs and moves), temperature
(unset: sent in the body when given, since the SDK no longer takes it), timeout (s per request), retries, tools (true), max_chars (prompt cap), corrections (1).
"""

from __future__ import annotations

import os

from autoresearch.agents import Agent, Proposal, answers, pricing
from autoresearch.errors import AgentError, AgentUnavailable, ConfigError

DEFAULT_MODEL = "claude-sonnet-4-5"
TOOL = "propose_change"
MAX_TOKENS = {"edits": 4096, "knobs": 256, "moves": 256}
TEMPERATURE = None      # current Claude models choose their own sampling; set it for other servers


class AnthropicAgent(Agent):
    name = "anthropic"

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 600.0, retries: int = 4, max_tokens: int | None = None,
                 temperature: float | None = TEMPERATURE, tools: bool = True, max_chars: int = 60_000,
                 corrections: int = 1, mode: str = "auto", context_tokens: int | None = None):
        self.model = model or os.environ.get("ANTHROPIC_MODEL") or DEFAULT_MODEL
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self.api_key = api_key
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        if mode not in answers.MODES:
            raise ConfigError(f"anthropic: mode must be one of {', '.join(answers.MODES)}; not {mode!r}")
        self.mode = mode
        self.context_tokens = None if context_tokens is None else int(context_tokens)
        self.temperature = None if temperature is None else float(temperature)
        self.tools = tools if isinstance(tools, bool) else str(tools).lower() in ("1", "true", "yes")
        self.max_chars = int(max_chars)
        self.corrections = int(corrections)
        self._client = None

    def _key(self) -> str | None:
        return self.api_key or os.environ.get("ANTHROPIC_API_KEY")

    def check(self) -> None:
        try:
            import anthropic  # noqa: F401
        except ImportError as e:
            raise AgentUnavailable("anthropic agent: the anthropic package is missing: "
                                   "pip install 'autoresearch[anthropic]'") from e
        if not (self._key() or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
            raise AgentUnavailable("anthropic agent: set ANTHROPIC_API_KEY (https://console.anthropic.com) "
                                   "or ANTHROPIC_AUTH_TOKEN")

    def client(self):
        if self._client is None:
            self.check()
            import anthropic
            key = {"api_key": self._key()} if self._key() else {}   # else the SDK finds ANTHROPIC_AUTH_TOKEN
            self._client = anthropic.Anthropic(**key, base_url=self.base_url,
                                               timeout=self.timeout, max_retries=self.retries)
        return self._client

    def tokens_for(self, form: str) -> int:
        return self.max_tokens or MAX_TOKENS[form]

    def _create(self, messages, form):
        import anthropic
        kw = {"model": self.model, "max_tokens": self.tokens_for(form.name), "messages": messages}
        if self.temperature is not None:   # not a parameter of the SDK any more; servers that take it still can
            kw["extra_body"] = {"temperature": self.temperature}
        if self.tools:
            kw["tools"] = [{"name": TOOL, "description": "Give your answer.", "input_schema": form.schema()}]
            kw["tool_choice"] = {"type": "tool", "name": TOOL}
        try:
            return self.client().messages.create(**kw)
        except anthropic.APIError as e:
            raise AgentError(f"anthropic agent: {self.model} at {self.base_url or 'api.anthropic.com'}: {e}") from e

    def propose(self, context) -> Proposal:
        from autoresearch.agents import prompt as prompt_mod

        form = answers.first_form(context, self.mode)
        max_chars = prompt_mod.budget_chars(self.context_tokens, self.tokens_for(form.name), self.max_chars)
        first = prompt_mod.build(context, answer=form.name, max_chars=max_chars, menu=form.menu(), hints=form.hints(),
                                 instructions=form.instructions() if form.name != "edits" else "")
        messages = []
        state = {"tool_id": None}

        def ask(message, form):
            if state["tool_id"]:
                messages.append({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": state["tool_id"], "is_error": True, "content": message}]})
            else:
                messages.append({"role": "user", "content": message})
            resp = self._create(messages, form)
            blocks = [b.model_dump(exclude_none=True) if hasattr(b, "model_dump") else dict(b) for b in (resp.content or [])]
            messages.append({"role": "assistant", "content": blocks or [{"type": "text", "text": "(empty)"}]})
            tool = next((b for b in blocks if b.get("type") == "tool_use"), None)
            state["tool_id"] = tool.get("id") if tool else None
            answer = tool.get("input") if tool else "\n".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            u = getattr(resp, "usage", None)
            kinds = pricing.tokens(input=getattr(u, "input_tokens", 0), output=getattr(u, "output_tokens", 0),
                                   cached_input=getattr(u, "cache_read_input_tokens", 0),
                                   cache_write=getattr(u, "cache_creation_input_tokens", 0))
            return answers.Reply(answer, kinds, cut=getattr(resp, "stop_reason", "") == "max_tokens")

        out = answers.loop(context, ask, first, self.mode, self.corrections, self.tokens_for(form.name))
        kinds = out.tokens
        return Proposal(description=out.description, invalid=out.invalid,
                        tokens_in=kinds["input"] + kinds["cached_input"] + kinds["cache_write"],
                        tokens_out=kinds["output"],
                        extra={"model": self.model, "tokens": kinds, "calls": out.calls, "form": out.form,
                               "mode": self.mode})
