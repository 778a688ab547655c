"""OpenAIAgent: any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp's server, Ollama...).

The model gets `prompt.build(context)` and answers with one JSON object of search/replace
edits (see prompt.py); the agent applies them to the editable files. Structured output is
tried in this order and the first mode the server accepts is remembered:
`json_schema` (OpenAI), `json_object` with a `schema` (llama.cpp's server rejects
json_schema with HTTP 500 but honours this), then plain text. A malformed answer gets one
corrective retry, then an invalid Proposal. Transient errors (429, 5xx, connection,
timeout) are retried by the SDK with exponential backoff (`retries`), then AgentError.

Options (or env): base_url (OPENAI_BASE_URL), model (OPENAI_MODEL, default gpt-4.1),
api_key (OPENAI_API_KEY; a placeholder is used for a non-OpenAI base_url), timeout (s per
request), retries, max_tokens, temperature, response_format (auto | json_schema |
json_object | text), max_chars (prompt cap).
"""

from __future__ import annotations

import os

from autoresearch.agents import Agent, Proposal
from autoresearch.errors import AgentError, AgentUnavailable, ConfigError

DEFAULT_MODEL = "gpt-4.1"
MODES = ("json_schema", "json_object", "text")


class OpenAIAgent(Agent):
    name = "openai"

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 600.0, retries: int = 4, max_tokens: int = 8192, temperature: float | None = None,
                 response_format: str = "auto", max_chars: int = 60_000, corrections: int = 1):
        self.model = model or os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.api_key = api_key
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.max_tokens = int(max_tokens)
        self.temperature = None if temperature is None else float(temperature)
        if response_format not in ("auto", *MODES):
            raise ConfigError(f"openai: response_format must be auto, {', '.join(MODES)}; not {response_format!r}")
        self.modes = list(MODES) if response_format == "auto" else [response_format]
        self.confirmed = response_format != "auto"   # a mode that worked is kept from then on
        self.max_chars = int(max_chars)
        self.corrections = int(corrections)
        self._client = None

    @property
    def official(self) -> bool:
        return not self.base_url or "api.openai.com" in self.base_url

    def _key(self) -> str | None:
        key = self.api_key or os.environ.get("OPENAI_API_KEY")
        return key or (None if self.official else "not-needed")

    def check(self) -> None:
        try:
            import openai  # noqa: F401
        except ImportError as e:
            raise AgentUnavailable("openai agent: the openai package is missing: pip install 'autoresearch[openai]'") from e
        if not self._key():
            raise AgentUnavailable("openai agent: set OPENAI_API_KEY (or pass --base-url for a local "
                                   "OpenAI-compatible server, which needs no key)")

    def client(self):
        if self._client is None:
            self.check()
            import openai
            self._client = openai.OpenAI(api_key=self._key(), base_url=self.base_url,
                                         timeout=self.timeout, max_retries=self.retries)
        return self._client

    def _format(self, mode: str):
        from autoresearch.agents.prompt import SCHEMA
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "proposal", "schema": SCHEMA, "strict": True}}
        if mode == "json_object":
            return {"type": "json_object", "schema": SCHEMA}
        return None

    def _create(self, messages):
        import openai
        client = self.client()
        kw = {"model": self.model, "messages": messages}
        # OpenAI's newer models take only max_completion_tokens; other servers know max_tokens
        kw["max_completion_tokens" if self.official else "max_tokens"] = self.max_tokens
        if self.temperature is not None:
            kw["temperature"] = self.temperature
        while True:
            mode = self.modes[0]
            fmt = self._format(mode)
            probing = not self.confirmed and len(self.modes) > 1
            try:
                c = client.with_options(max_retries=0) if probing else client
                resp = c.chat.completions.create(**kw, **({"response_format": fmt} if fmt else {}))
            except (openai.BadRequestError, openai.UnprocessableEntityError, openai.InternalServerError) as e:
                if probing:
                    self.modes.pop(0)   # this server does not take this response_format: fall back
                    continue
                raise AgentError(f"openai agent: {self.model} at {self.base_url or 'api.openai.com'}: {e}") from e
            except openai.APIError as e:
                raise AgentError(f"openai agent: {self.model} at {self.base_url or 'api.openai.com'}: {e}") from e
            self.confirmed = True
            return resp, mode

    def propose(self, context) -> Proposal:
        from autoresearch.agents import prompt as prompt_mod

        messages = [{"role": "user", "content": prompt_mod.build(context, answer="edits", max_chars=self.max_chars)}]
        used = {}

        def ask(error):
            if error:
                messages.append({"role": "user", "content": prompt_mod.correction(error)})
            resp, mode = self._create(messages)
            used["mode"] = mode
            used["model"] = getattr(resp, "model", None) or self.model
            text = (resp.choices[0].message.content or "") if resp.choices else ""
            messages.append({"role": "assistant", "content": text})
            u = getattr(resp, "usage", None)
            return text, getattr(u, "prompt_tokens", 0) or 0, getattr(u, "completion_tokens", 0) or 0

        description, invalid, t_in, t_out = prompt_mod.edit_loop(context, ask, self.corrections)
        return Proposal(description=description, tokens_in=t_in, tokens_out=t_out, invalid=invalid,
                        extra={"model": self.model, "served_by": used.get("model"),
                               "response_format": used.get("mode"), "calls": sum(m["role"] == "assistant" for m in messages)})
