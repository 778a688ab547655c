"""OpenAIAgent: any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp's server, Ollama...).

The model answers in one of the forms of answers.py (option `mode`: edits, knobs, moves, or
auto = edits, then knobs on the correction); the agent applies the answer to the editable
files. Structured output is probed in this order and the first format the server accepts is
remembered: `json_schema` (OpenAI), `json_object` with a `schema` (llama.cpp's server rejects
json_schema but honours this), then plain text. A format is dropped only when the server says
it is unsupported (never for a context-length error), or after two answers that do not
conform to the schema (a server that accepts the format without enforcing it). A bad answer
gets one corrective retry, then an invalid Proposal; an answer stopped at max_tokens is
reported as cut, not as malformed. Transient errors (429, 5xx, connection, timeout) are
retried by the SDK with exponential backoff (`retries`), then AgentError.

Options (or env): base_url (OPENAI_BASE_URL), model (OPENAI_MODEL, default gpt-4.1),
api_key (OPENAI_API_KEY; a placeholder is used for a non-OpenAI base_url), mode (auto),
context_tokens (the server's context window: the prompt is cut to fit it with the answer and
one correction), max_tokens (per answer; default 4096 for edits, 256 for knobs and moves),
temperature (0.3), timeout (s per request), retries, response_format (auto | json_schema |
json_object | text), max_chars (prompt cap), corrections (1).
"""

from __future__ import annotations

import os
import re

from autoresearch.agents import Agent, Proposal, answers, pricing
from autoresearch.errors import AgentError, AgentUnavailable, ConfigError

DEFAULT_MODEL = "gpt-4.1"
FORMATS = ("json_schema", "json_object", "text")
MAX_TOKENS = {"edits": 4096, "knobs": 256, "moves": 256}
TEMPERATURE = 0.3
_UNSUPPORTED = re.compile(r"response_format|json_schema|json_object|unsupported|not supported|input should be",
                          re.I)
_CONTEXT = re.compile(r"context|too long|too many tokens|maximum.*tokens|exceed", re.I)


def unsupported(error) -> bool:
    """Whether a server's error says the response format is not supported (and not that the prompt is too long)."""
    text = str(error)
    return bool(_UNSUPPORTED.search(text)) and not _CONTEXT.search(text)


class OpenAIAgent(Agent):
    name = "openai"

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 600.0, retries: int = 4, max_tokens: int | None = None,
                 temperature: float | None = TEMPERATURE, response_format: str = "auto", max_chars: int = 60_000,
                 corrections: int = 1, mode: str = "auto", context_tokens: int | None = None):
        self.model = model or os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.api_key = api_key
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        self.temperature = None if temperature is None else float(temperature)
        if response_format not in ("auto", *FORMATS):
            raise ConfigError(f"openai: response_format must be auto, {', '.join(FORMATS)}; not {response_format!r}")
        if mode not in answers.MODES:
            raise ConfigError(f"openai: mode must be one of {', '.join(answers.MODES)}; not {mode!r}")
        self.mode = mode
        self.formats = list(FORMATS) if response_format == "auto" else [response_format]
        self.confirmed = response_format != "auto"   # a format that worked is kept from then on
        self.misses = 0                              # answers that did not conform to the schema
        self.demoted: list[str] = []
        self.max_chars = int(max_chars)
        self.corrections = int(corrections)
        self.context_tokens = None if context_tokens is None else int(context_tokens)
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

    def tokens_for(self, form: str) -> int:
        return self.max_tokens or MAX_TOKENS[form]

    def _format(self, fmt: str, schema: dict):
        if fmt == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
        if fmt == "json_object":
            return {"type": "json_object", "schema": schema}
        return None

    def _where(self) -> str:
        return f"openai agent: {self.model} at {self.base_url or 'api.openai.com'}"

    def _create(self, messages, schema: dict, max_tokens: int):
        import openai
        client = self.client()
        kw = {"model": self.model, "messages": messages}
        # OpenAI's newer models take only max_completion_tokens; other servers know max_tokens
        kw["max_completion_tokens" if self.official else "max_tokens"] = max_tokens
        if self.temperature is not None:
            kw["temperature"] = self.temperature
        while True:
            fmt = self.formats[0]
            spec = self._format(fmt, schema)
            probing = not self.confirmed and len(self.formats) > 1
            try:
                c = client.with_options(max_retries=0) if probing else client
                resp = c.chat.completions.create(**kw, **({"response_format": spec} if spec else {}))
            except (openai.BadRequestError, openai.UnprocessableEntityError, openai.InternalServerError) as e:
                if probing and unsupported(e):
                    self.formats.pop(0)   # this server does not take this response_format: fall back
                    continue
                raise AgentError(f"{self._where()}: {e}") from e
            except openai.APIError as e:
                raise AgentError(f"{self._where()}: {e}") from e
            self.confirmed = True
            return resp, fmt

    def _conform(self, fmt: str, text: str, schema: dict) -> None:
        """Count answers that a structured format let through without its schema; demote after two."""
        if fmt == "text":
            return
        obj = answers.as_json(text)
        if obj is not None and answers.conforms(obj, schema):
            return
        self.misses += 1
        if self.misses >= 2 and len(self.formats) > 1:
            self.demoted.append(self.formats.pop(0))
            self.misses = 0

    def propose(self, context) -> Proposal:
        from autoresearch.agents import prompt as prompt_mod

        form = answers.first_form(context, self.mode)
        max_chars = prompt_mod.budget_chars(self.context_tokens, self.tokens_for(form.name), self.max_chars)
        first = prompt_mod.build(context, answer=form.name, max_chars=max_chars, menu=form.menu(), hints=form.hints(),
                                 instructions=form.instructions() if form.name != "edits" else "")
        messages = []
        used = {}

        def ask(message, form):
            messages.append({"role": "user", "content": message})
            schema = form.schema()
            resp, fmt = self._create(messages, schema, self.tokens_for(form.name))
            used["format"], used["model"] = fmt, getattr(resp, "model", None) or self.model
            choice = resp.choices[0] if resp.choices else None
            text = (choice.message.content or "") if choice else ""
            messages.append({"role": "assistant", "content": text})
            self._conform(fmt, text, schema)
            u = getattr(resp, "usage", None)
            prompt_tokens = getattr(u, "prompt_tokens", 0) or 0
            cached = getattr(getattr(u, "prompt_tokens_details", None), "cached_tokens", 0) or 0
            kinds = pricing.tokens(input=prompt_tokens - cached, cached_input=cached,
                                   output=getattr(u, "completion_tokens", 0) or 0)
            return answers.Reply(text, kinds, cut=getattr(choice, "finish_reason", "") == "length")

        out = answers.loop(context, ask, first, self.mode, self.corrections, self.tokens_for(form.name))
        kinds = out.tokens
        return Proposal(description=out.description, invalid=out.invalid,
                        tokens_in=kinds["input"] + kinds["cached_input"], tokens_out=kinds["output"],
                        extra={"model": self.model, "served_by": used.get("model"), "tokens": kinds,
                               "response_format": used.get("format"), "calls": out.calls, "form": out.form,
                               "mode": self.mode, **({"demoted": list(self.demoted)} if self.demoted else {})})
