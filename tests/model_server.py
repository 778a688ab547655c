"""A scripted model server on 127.0.0.1 for the tests: the paid APIs, spoken over real HTTP.

It stands in for the model only; the programs talking to it are the real ones (Claude Code,
codex, the openai and anthropic SDKs). Protocols, chosen by path:

- `POST /v1/messages` (Anthropic Messages): JSON, or SSE when the request has `stream: true`
  (`message_start`, `content_block_start/delta/stop`, `message_delta`, `message_stop`), as
  Claude Code always asks for.
- `POST /v1/responses` (OpenAI Responses, what codex speaks): SSE `response.created`,
  `response.output_item.added/done`, `response.completed` (usage with cached and reasoning
  tokens) or `response.failed`.
- `POST /v1/chat/completions` (OpenAI chat): JSON.
- anything else: `HEAD`/`GET` answer 200 with `{}` (Claude Code probes `HEAD /`).

A `brain(request) -> reply` decides every answer; `request` is {"path", "headers", "body"}.
A reply is a `Reply` (content blocks: `text(...)`, `tool(name, input)`, `patch(text)`),
an `HTTPError(status, message)`, or `DROP` (the connection is cut after the first event,
a disconnect the client should recover from). Every request is kept in `server.requests`.

    with ModelServer(brain) as s:   # s.url = "http://127.0.0.1:PORT"
        ...
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_ids = itertools.count(1)


@dataclass
class Reply:
    blocks: list                          # [{"type": "text", "text"} | {"type": "tool", "name", "input"} | {"type": "patch", "input"}]
    usage: dict = field(default_factory=lambda: {"input": 1000, "output": 50, "cached": 0, "cache_write": 0,
                                                 "reasoning": 0})
    stop: str = ""                        # "" = derived: tool_use when a tool is called, else end_turn
    model: str = ""


@dataclass
class HTTPError:
    status: int
    message: str
    kind: str = "invalid_request_error"


DROP = "drop"


def text(t: str) -> dict:
    return {"type": "text", "text": t}


def tool(name: str, input: dict) -> dict:
    return {"type": "tool", "name": name, "input": input}


def patch(body: str) -> dict:
    """codex's freeform apply_patch tool call (`*** Begin Patch ... *** End Patch`)."""
    return {"type": "patch", "input": body}


def usage(input=1000, output=50, cached=0, cache_write=0, reasoning=0) -> dict:
    return {"input": input, "output": output, "cached": cached, "cache_write": cache_write, "reasoning": reasoning}


# ---------------------------------------------------------------------------- helpers for brains
def messages_of(body: dict) -> list:
    return body.get("messages") or []


def tool_names(body: dict) -> list[str]:
    return [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]


def system_text(body: dict) -> str:
    s = body.get("system") or body.get("instructions") or ""
    if isinstance(s, list):
        s = "\n".join(b.get("text", "") for b in s if isinstance(b, dict))
    return str(s)


def working_dir(body: dict) -> str:
    """Claude Code names its working directory in the system prompt."""
    m = re.search(r"Primary working directory: (\S+)", system_text(body) + json.dumps(body.get("messages") or []))
    return m.group(1) if m else ""


def tool_results(body: dict) -> list:
    """The tool results (Anthropic) or tool outputs (Responses) sent back so far, oldest first."""
    out = []
    for m in messages_of(body):
        content = m.get("content")
        if isinstance(content, list):
            out += [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
    for item in body.get("input") or []:
        if isinstance(item, dict) and item.get("type", "").endswith("_call_output"):
            out.append(item)
    return out


# ---------------------------------------------------------------------------- server
class ModelServer:
    def __init__(self, brain, model: str = "scripted-model"):
        self.brain = brain
        self.model = model
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _small(self, status, payload, extra_headers=()):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in extra_headers:
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def do_HEAD(self):
                self._small(200, {})

            def do_GET(self):
                outer.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers), "body": {}})
                if self.path.rstrip("/").endswith("/models"):
                    return self._small(200, {"object": "list", "data": [], "models": []})
                self._small(200, {})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"raw": raw.decode(errors="replace")}
                req = {"method": "POST", "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                       "body": body}
                outer.requests.append(req)
                reply = outer.brain(req)
                path = self.path.split("?")[0]
                if isinstance(reply, HTTPError):
                    err = {"type": "error", "error": {"type": reply.kind, "message": reply.message}}
                    if not path.endswith("/messages"):
                        err = {"error": {"message": reply.message, "type": reply.kind, "code": None}}
                    return self._small(reply.status, err, [("retry-after-ms", "10")])
                if path.endswith("/messages"):
                    return self._anthropic(body, reply)
                if path.endswith("/responses"):
                    return self._responses(body, reply)
                if path.endswith("/chat/completions"):
                    return self._chat(body, reply)
                self._small(404, {"error": {"message": f"no such path {self.path}"}})

            # ---------------------------------------------------- SSE plumbing
            def _sse_start(self):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True

            def _event(self, name, data):
                self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

            # ---------------------------------------------------- Anthropic Messages
            def _anthropic(self, body, reply):
                model = body.get("model") or outer.model
                if reply == DROP:
                    self._sse_start()
                    self._event("message_start", {"type": "message_start", "message": _anthropic_message(model, [], None, usage())})
                    return
                u = reply.usage
                blocks = []
                for b in reply.blocks:
                    if b["type"] == "text":
                        blocks.append({"type": "text", "text": b["text"]})
                    else:
                        blocks.append({"type": "tool_use", "id": f"toolu_{next(_ids):04d}", "name": b["name"],
                                       "input": b["input"]})
                stop = reply.stop or ("tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn")
                if not body.get("stream"):
                    return self._small(200, _anthropic_message(model, blocks, stop, u))
                self._sse_start()
                start = _anthropic_message(model, [], None, u)
                start["usage"]["output_tokens"] = 1
                self._event("message_start", {"type": "message_start", "message": start})
                for i, b in enumerate(blocks):
                    if b["type"] == "text":
                        self._event("content_block_start", {"type": "content_block_start", "index": i,
                                                            "content_block": {"type": "text", "text": ""}})
                        self._event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                            "delta": {"type": "text_delta", "text": b["text"]}})
                    else:
                        self._event("content_block_start", {"type": "content_block_start", "index": i,
                                                            "content_block": dict(b, input={})})
                        self._event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                            "delta": {"type": "input_json_delta",
                                                                      "partial_json": json.dumps(b["input"])}})
                    self._event("content_block_stop", {"type": "content_block_stop", "index": i})
                self._event("message_delta", {"type": "message_delta",
                                              "delta": {"stop_reason": stop, "stop_sequence": None},
                                              "usage": {"output_tokens": u["output"]}})
                self._event("message_stop", {"type": "message_stop"})

            # ---------------------------------------------------- OpenAI Responses
            def _responses(self, body, reply):
                model = body.get("model") or outer.model
                rid = f"resp_{next(_ids):04d}"
                created = {"id": rid, "object": "response", "created_at": 0, "model": model, "status": "in_progress",
                           "output": []}
                self._sse_start()
                self._event("response.created", {"type": "response.created", "response": created})
                if reply == DROP:
                    return
                items = []
                for b in reply.blocks:
                    iid = f"item_{next(_ids):04d}"
                    if b["type"] == "text":
                        items.append({"type": "message", "id": iid, "role": "assistant", "status": "completed",
                                      "content": [{"type": "output_text", "text": b["text"], "annotations": []}]})
                    elif b["type"] == "patch":
                        items.append({"type": "custom_tool_call", "id": iid, "status": "completed",
                                      "call_id": f"call_{next(_ids):04d}", "name": "apply_patch", "input": b["input"]})
                    else:
                        items.append({"type": "function_call", "id": iid, "status": "completed",
                                      "call_id": f"call_{next(_ids):04d}", "name": b["name"],
                                      "arguments": json.dumps(b["input"])})
                for i, item in enumerate(items):
                    self._event("response.output_item.added", {"type": "response.output_item.added", "output_index": i,
                                                               "item": dict(item, status="in_progress")})
                    self._event("response.output_item.done", {"type": "response.output_item.done", "output_index": i,
                                                              "item": item})
                u = reply.usage
                if reply.stop == "failed":
                    self._event("response.failed", {"type": "response.failed", "response": dict(
                        created, status="failed", error={"code": "server_error", "message": "scripted failure"})})
                    return
                done = dict(created, status="completed", output=items, usage={
                    "input_tokens": u["input"], "input_tokens_details": {"cached_tokens": u["cached"]},
                    "output_tokens": u["output"], "output_tokens_details": {"reasoning_tokens": u["reasoning"]},
                    "total_tokens": u["input"] + u["output"]})
                self._event("response.completed", {"type": "response.completed", "response": done})

            # ---------------------------------------------------- OpenAI chat
            def _chat(self, body, reply):
                content = "".join(b.get("text", "") for b in reply.blocks if b["type"] == "text")
                u = reply.usage
                self._small(200, {"id": f"chat_{next(_ids)}", "object": "chat.completion", "created": 0,
                                  "model": reply.model or body.get("model") or outer.model,
                                  "choices": [{"index": 0, "finish_reason": reply.stop or "stop",
                                               "message": {"role": "assistant", "content": content}}],
                                  "usage": {"prompt_tokens": u["input"], "completion_tokens": u["output"],
                                            "total_tokens": u["input"] + u["output"]}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def posts(self, suffix: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"].split("?")[0].endswith(suffix)]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _anthropic_message(model, content, stop, u) -> dict:
    return {"id": f"msg_{next(_ids):04d}", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": u["input"], "output_tokens": u["output"],
                      "cache_creation_input_tokens": u["cache_write"], "cache_read_input_tokens": u["cached"]}}
