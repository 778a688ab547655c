"""AnthropicAgent: the Anthropic Messages API (or a server speaking it) via the `anthropic` SDK.

The model gets `prompt.build(context)` and answers through a forced tool call
(`propose_change`, whose input schema is prompt.SCHEMA: a description and search/replace
edits); with `tools=false` it answers in text, parsed the same way. A malformed answer gets
one corrective retry (a tool_result with is_error), then an invalid Proposal. Transient
errors (429, 5xx, overloaded, connection) are retried by the SDK with exponential backoff
(`retries`), then AgentError.

Options (or env): model (ANTHROPIC_MODEL, default claude-sonnet-4-5), base_url
(ANTHROPIC_BASE_URL), api_key (ANTHROPIC_API_KEY, or ANTHROPIC_AUTH_TOKEN), timeout (s per request), retries,
max_tokens, temperature, tools (true), max_chars (prompt cap).
"""

from __future__ import annotations

import os

from autoresearch.agents import Agent, Proposal
from autoresearch.errors import AgentError, AgentUnavailable

DEFAULT_MODEL = "claude-sonnet-4-5"
TOOL = "propose_change"


class AnthropicAgent(Agent):
    name = "anthropic"

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 600.0, retries: int = 4, max_tokens: int = 8192, temperature: float | None = None,
                 tools: bool = True, max_chars: int = 60_000, corrections: int = 1):
        self.model = model or os.environ.get("ANTHROPIC_MODEL") or DEFAULT_MODEL
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self.api_key = api_key
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.max_tokens = int(max_tokens)
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

    def _create(self, messages):
        import anthropic
        from autoresearch.agents.prompt import SCHEMA
        kw = {"model": self.model, "max_tokens": self.max_tokens, "messages": messages}
        if self.temperature is not None:
            kw["temperature"] = self.temperature
        if self.tools:
            kw["tools"] = [{"name": TOOL, "description": "Apply one change to the editable files.",
                            "input_schema": SCHEMA}]
            kw["tool_choice"] = {"type": "tool", "name": TOOL}
        try:
            return self.client().messages.create(**kw)
        except anthropic.APIError as e:
            raise AgentError(f"anthropic agent: {self.model} at {self.base_url or 'api.anthropic.com'}: {e}") from e

    def propose(self, context) -> Proposal:
        from autoresearch.agents import prompt as prompt_mod

        messages = [{"role": "user", "content": prompt_mod.build(context, answer="edits", max_chars=self.max_chars)}]
        state = {"tool_id": None, "calls": 0}

        def ask(error):
            if error:
                if state["tool_id"]:
                    messages.append({"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": state["tool_id"], "is_error": True,
                         "content": prompt_mod.correction(error)}]})
                else:
                    messages.append({"role": "user", "content": prompt_mod.correction(error)})
            resp = self._create(messages)
            state["calls"] += 1
            blocks = [b.model_dump(exclude_none=True) if hasattr(b, "model_dump") else dict(b) for b in (resp.content or [])]
            messages.append({"role": "assistant", "content": blocks or [{"type": "text", "text": "(empty)"}]})
            tool = next((b for b in blocks if b.get("type") == "tool_use"), None)
            state["tool_id"] = tool.get("id") if tool else None
            answer = tool.get("input") if tool else "\n".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            u = getattr(resp, "usage", None)
            t_in = sum(getattr(u, k, 0) or 0 for k in ("input_tokens", "cache_creation_input_tokens",
                                                       "cache_read_input_tokens"))
            return answer, t_in, getattr(u, "output_tokens", 0) or 0

        description, invalid, t_in, t_out = prompt_mod.edit_loop(context, ask, self.corrections)
        return Proposal(description=description, tokens_in=t_in, tokens_out=t_out, invalid=invalid,
                        extra={"model": self.model, "calls": state["calls"]})
