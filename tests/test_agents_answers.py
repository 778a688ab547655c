"""The answer forms of the API agents (agents/answers.py) and how the openai agent uses them, against the
scripted model server (tests/model_server.py) over a real socket.

Run: .venv/bin/python -m pytest tests/test_agents_answers.py -q
"""

from __future__ import annotations

import json
import subprocess

import pytest

from autoresearch.agents import Context, get_agent
from autoresearch.agents import answers, prompt
from autoresearch.agents.edits import AnswerError
from autoresearch.errors import AgentError, ConfigError
from autoresearch.trial import Trial, TrialState
from tests.model_server import HTTPError, ModelServer, Reply, text, usage

TRAIN = """\
import torch

LR = 0.01          # learning rate
DEPTH = 2          # transformer layers
WARMUP = 0.0       # fraction of steps warming up
SEED = 42          # random seed
COMPILE = True     # torch.compile

print("---")
"""


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "train.py").write_text(TRAIN)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def ctx(root, history=(), **kw):
    return Context(root=root, program="Lower val_bpb.", files={"train.py": (root / "train.py").read_text()},
                   editable=("train.py",), history=tuple(history), trial_number=len(history) + 1, **kw)


def tried(n, state, value, **knobs):
    base = {"LR": 0.01, "DEPTH": 2, "WARMUP": 0.0, "SEED": 42, "COMPILE": True}
    return Trial(number=n, state=TrialState(state), description="x", value=value, extra={"knobs": dict(base, **knobs)})


# ---------------------------------------------------------------------------- knobs
def test_knobs_schema_names_each_constant(repo):
    form = answers.Knobs(ctx(repo))
    assert sorted(form.values) == ["DEPTH", "LR", "WARMUP"]          # numeric, no seed, no bool
    items = form.schema()["properties"]["changes"]["items"]["anyOf"]
    assert sorted((i["properties"]["name"]["const"], i["properties"]["value"]["type"]) for i in items) == \
        [("DEPTH", "integer"), ("LR", "number"), ("WARMUP", "number")]
    trials = [answers.Knobs(Context(**{**ctx(repo).__dict__, "trial_number": n})) for n in range(8)]
    assert len({tuple(f.order) for f in trials}) > 1                 # the hints' order moves from trial to trial
    assert len({f.menu() for f in trials}) == 1                      # the menu stays (a server's prompt cache)
    assert "LR: now 0.01; number from 0.001 to 0.1: learning rate" in form.menu()
    assert "LR: 0.015 or 0.00667" in form.hints() and "0.015" not in form.menu()
    only = answers.Knobs(ctx(repo, search={"DEPTH": [1, 6, "int"]}))
    assert list(only.values) == ["DEPTH"] and only.ranges["DEPTH"] == (1, 6, "int")


def test_knobs_apply_rounds_steps_and_describes(repo):
    form = answers.Knobs(ctx(repo))
    d = form.apply({"changes": [{"name": "DEPTH", "value": 3.4}, {"name": "LR", "value": 0.0123456}],
                    "reason": "deeper\nand faster"})
    assert d == "DEPTH 2 -> 3, LR 0.01 -> 0.0123: deeper and faster"
    text_ = (repo / "train.py").read_text()
    assert "DEPTH = 3          # transformer layers" in text_ and "LR = 0.0123          # learning rate" in text_
    (repo / "train.py").write_text(TRAIN)
    # 5.0 is outside LR's range (0.001 to 0.1): one step toward it (x2), not a jump to the bound
    assert answers.Knobs(ctx(repo)).apply('{"changes": [{"name": "LR", "value": 5.0}], "reason": ""}') \
        == "LR 0.01 -> 0.02"
    (repo / "train.py").write_text(TRAIN)
    # a "change" to the current value next to a real one is dropped, not refused
    assert answers.Knobs(ctx(repo)).apply({"changes": [{"name": "DEPTH", "value": 2}, {"name": "LR", "value": 0.1}],
                                           "reason": "r"}) == "LR 0.01 -> 0.1: r"
    (repo / "train.py").write_text(TRAIN)
    # a constant named twice: the first one counts
    assert answers.Knobs(ctx(repo)).apply({"changes": [{"name": "DEPTH", "value": 3}, {"name": "DEPTH", "value": 4}],
                                           "reason": ""}) == "DEPTH 2 -> 3"


@pytest.mark.parametrize("answer,why", [
    ({"changes": [{"name": "SEED", "value": 1}], "reason": ""}, "not one of the constants"),
    ({"changes": [{"name": "LR", "value": 0.01}], "reason": ""}, "already 0.01; untried values of LR: 0.015 or 0.00667"),
    ({"changes": [{"name": "LR", "value": "fast"}], "reason": ""}, "must be a number"),
    ({"changes": [{"name": "LR", "value": 0.02}] * 3, "reason": ""}, "at most two"),
    ({"changes": [], "reason": ""}, "one or two"),
    ({"changes": [{"name": "DEPTH", "value": 3}], "reason": ""},
     r"repeats trial 4 \(discard, val_bpb 1.5\); untried values of DEPTH: 1;"),
])
def test_knobs_refusals(repo, answer, why):
    form = answers.Knobs(ctx(repo, [tried(4, "discard", 1.5, DEPTH=3)]))
    with pytest.raises(AnswerError, match=why):
        form.apply(answer)
    assert (repo / "train.py").read_text() == TRAIN


# ---------------------------------------------------------------------------- moves
def test_moves_are_untried_and_shuffled(repo):
    history = [tried(1, "discard", 1.5, DEPTH=3)]
    form = answers.Moves(ctx(repo, history))
    assert "DEPTH 2 -> 3" not in form.moves and "DEPTH 2 -> 1" in form.moves and "LR 0.01 -> 0.015" in form.moves
    assert form.schema()["properties"]["move"]["enum"] == list(form.moves)
    other = answers.Moves(Context(**{**ctx(repo, history).__dict__, "trial_number": 7}))
    assert sorted(other.moves) == sorted(form.moves) and list(other.moves) != list(form.moves)
    assert form.apply({"move": "DEPTH 2 -> 1", "reason": "smaller is faster"}) == "DEPTH 2 -> 1: smaller is faster"
    with pytest.raises(AnswerError, match="not one of the listed moves"):
        form.apply({"move": "DEPTH 2 -> 9", "reason": ""})


def test_conforms():
    schema = answers.Knobs.__new__(answers.Knobs)
    schema.values = {"LR": 0.01, "DEPTH": 2}
    s = answers.Knobs.schema(schema)
    assert answers.conforms({"changes": [{"name": "DEPTH", "value": 3}], "reason": "x"}, s)
    assert not answers.conforms({"changes": [{"name": "DEPTH", "value": 3.5}], "reason": "x"}, s)
    assert not answers.conforms({"changes": [{"name": "SEED", "value": 3}], "reason": "x"}, s)
    assert not answers.conforms({"changes": [], "reason": "x"}, s)
    assert not answers.conforms({"changes": [{"name": "LR", "value": 1}], "reason": "x", "more": 1}, s)
    assert answers.as_json('{"reason": "line\nbreak", "changes": []}') == {"reason": "line\nbreak", "changes": []}


# ---------------------------------------------------------------------------- prompt budget
def test_prompt_budget_and_what_shrinks_first(repo):
    with pytest.raises(ConfigError, match="no room"):
        prompt.budget_chars(1024, 512)
    assert prompt.budget_chars(8192, 256) == int((8192 - 512 - 400) * 3.0)
    history = [Trial(number=i, state=TrialState.DISCARD, description=f"idea {i}", value=2.0) for i in range(40)]
    big = Context(**{**ctx(repo, history).__dict__, "program": "P" * 20_000})
    small = prompt.build(big, max_chars=6000)
    assert len(small) <= 6500 and "idea 39" in small and "characters left out" in small   # the table outlives program.md
    form = answers.Knobs(big)
    knobs_prompt = prompt.build(big, answer="knobs", menu=form.menu(), instructions=form.instructions(),
                                hints=form.hints(), max_chars=6000)
    assert "import torch" not in knobs_prompt and "LR: 0.015 or 0.00667" in knobs_prompt and '"changes"' in knobs_prompt
    assert "idea 39" in knobs_prompt and "idea 29" not in knobs_prompt and len(knobs_prompt) < 3000   # short for small models
    # what changes from trial to trial comes last: the menu sits before the table, the hints after it
    assert knobs_prompt.index("LR: now 0.01") < knobs_prompt.index("idea 39") < knobs_prompt.index("LR: 0.015")
    best = Context(**{**big.__dict__, "best": history[-1]})
    assert "## Best so far (the current values above): trial 39" in prompt.build(best, answer="knobs", menu=form.menu())
    assert "## Best so far (the files below): trial 39" in prompt.build(best)


# ---------------------------------------------------------------------------- the openai agent
def chat_brain(*replies):
    """Reply in order (the last one repeats); a reply is text, a Reply, or an HTTPError."""
    queue = list(replies)

    def brain(req):
        r = queue.pop(0) if len(queue) > 1 else queue[0]
        return r if isinstance(r, (Reply, HTTPError)) else Reply([text(r)], usage(100, 20))
    return brain


def bodies(s):
    return [r["body"] for r in s.posts("/chat/completions")]


def test_openai_knobs_mode(repo):
    answer = json.dumps({"changes": [{"name": "DEPTH", "value": 3}], "reason": "more capacity"})
    with ModelServer(chat_brain(answer)) as s:
        p = get_agent("openai", base_url=s.url + "/v1", model="m", mode="knobs", response_format="json_object",
                      retries=0).propose(ctx(repo))
    assert p.description == "DEPTH 2 -> 3: more capacity" and not p.invalid and p.extra["form"] == "knobs"
    body = bodies(s)[0]
    assert body["temperature"] == 0.3 and body["max_tokens"] == 256
    assert body["response_format"]["schema"]["properties"]["changes"]["maxItems"] == 2
    assert "import torch" not in body["messages"][0]["content"]


def test_openai_repeat_gets_a_correction_naming_the_trial(repo):
    again = json.dumps({"changes": [{"name": "DEPTH", "value": 3}], "reason": "r"})
    new = json.dumps({"changes": [{"name": "DEPTH", "value": 1}], "reason": "r"})
    with ModelServer(chat_brain(again, new)) as s:
        p = get_agent("openai", base_url=s.url + "/v1", model="m", mode="knobs", response_format="json_object",
                      retries=0).propose(ctx(repo, [tried(4, "discard", 1.5, DEPTH=3)]))
    assert p.description == "DEPTH 2 -> 1: r" and p.extra["calls"] == 2
    assert "repeats trial 4" in bodies(s)[1]["messages"][2]["content"]


def test_openai_auto_asks_for_knobs_on_the_correction(repo):
    bad = json.dumps({"description": "x", "edits": [{"file": "train.py", "search": "NOPE", "replace": "y"}]})
    good = json.dumps({"changes": [{"name": "LR", "value": 0.02}], "reason": "faster"})
    with ModelServer(chat_brain(bad, good)) as s:
        p = get_agent("openai", base_url=s.url + "/v1", model="m", response_format="json_object",
                      retries=0).propose(ctx(repo))
    first, second = bodies(s)
    assert first["response_format"]["schema"]["required"] == ["description", "edits"]
    assert second["response_format"]["schema"]["required"] == ["changes", "reason"]
    assert "not found" in second["messages"][2]["content"] and "LR: now 0.01" in second["messages"][2]["content"] \
        and "LR: 0.015 or 0.00667" in second["messages"][2]["content"]
    assert p.description == "LR 0.01 -> 0.02: faster" and p.extra["form"] == "knobs"


def test_probe_demotes_only_on_unsupported(repo):
    too_long = HTTPError(400, "This model's maximum context length is 8192 tokens")
    with ModelServer(chat_brain(too_long)) as s:
        agent = get_agent("openai", base_url=s.url + "/v1", model="m", mode="knobs", retries=0)
        with pytest.raises(AgentError, match="maximum context length"):
            agent.propose(ctx(repo))
    assert agent.formats[0] == "json_schema" and len(s.requests) == 1        # not demoted
    good = json.dumps({"changes": [{"name": "LR", "value": 0.02}], "reason": "r"})

    def llama(req):    # llama.cpp's server: json_schema is rejected, json_object with a schema works
        if req["body"].get("response_format", {}).get("type") == "json_schema":
            return HTTPError(500, "Input should be 'text' or 'json_object'")
        return Reply([text(good)])
    with ModelServer(llama) as s:
        p = get_agent("openai", base_url=s.url + "/v1", model="m", mode="knobs", retries=0).propose(ctx(repo))
    assert not p.invalid and p.extra["response_format"] == "json_object"


def test_a_format_not_enforced_is_demoted_after_two_misses(repo):
    loose = "Sure! Raise the learning rate."
    with ModelServer(chat_brain(loose)) as s:
        agent = get_agent("openai", base_url=s.url + "/v1", model="m", mode="knobs", retries=0, corrections=0)
        assert agent.propose(ctx(repo)).invalid
        assert agent.propose(ctx(repo)).invalid
        p = agent.propose(ctx(repo))
    assert [b["response_format"]["type"] for b in bodies(s)] == ["json_schema", "json_schema", "json_object"]
    assert p.extra["demoted"] == ["json_schema"]


def test_an_answer_cut_at_max_tokens_is_reported_as_cut(repo):
    cut = Reply([text('{"changes": [{"name": "LR", "value": 0.0')], usage(100, 256), stop="length")
    with ModelServer(chat_brain(cut)) as s:
        p = get_agent("openai", base_url=s.url + "/v1", model="m", mode="knobs", response_format="json_object",
                      retries=0).propose(ctx(repo))
    assert p.invalid.startswith("cut at max_tokens") and "256" in p.invalid
    assert "cut at max_tokens (256)" in bodies(s)[1]["messages"][2]["content"]
