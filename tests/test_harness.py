"""
Tests of the default harness (autoresearch/harness/prepare.py, train.py): real runs at tiny
scale on the CPU. The smoke profile, a temp AUTORESEARCH_CACHE and the first 400 embedded
documents (AUTORESEARCH_EMBEDDED_LIMIT) keep the whole file to well under a minute.

Run: python -m pytest tests/test_harness.py -q
"""

import ast
import importlib.util
import math
import os
import random
import re
import shutil
import subprocess
import sys

import pytest

from autoresearch.errors import ConfigError
from autoresearch.harness import Harness

HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "autoresearch", "harness")
LIMIT = "400"


def literal_profiles():
    tree = ast.parse(open(os.path.join(HARNESS, "prepare.py")).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "PROFILES":
            return ast.literal_eval(node.value)
    raise AssertionError("no PROFILES literal")


def set_constants(src, values):
    """What the tool does when it copies the harness: rewrite train.py's literal constants."""
    for name, value in values.items():
        src, n = re.subn(rf"^{name} = [^#\n]+", f"{name} = {value!r}  ", src, count=1, flags=re.M)
        assert n == 1, name
    return src


def make_workspace(path, train_src=None):
    path.mkdir(exist_ok=True)
    shutil.copy(os.path.join(HARNESS, "prepare.py"), path)
    shutil.copy(os.path.join(HARNESS, "score.py"), path)
    src = train_src or set_constants(open(os.path.join(HARNESS, "train.py")).read(), literal_profiles()["smoke"]["train"])
    (path / "train.py").write_text(src)
    return path


def run(args, cwd, env, timeout=120):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def summary(stdout):
    block = stdout[stdout.rindex("---\n"):]
    out = {}
    for k, v in (line.split(":", 1) for line in block.splitlines()[1:]):
        try:
            out[k.strip()] = float(v)
        except ValueError:
            out[k.strip()] = v.strip()      # data_sha256
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")}
    e.update(AUTORESEARCH_CACHE=str(tmp_path_factory.mktemp("cache")), AUTORESEARCH_PROFILE="smoke",
             AUTORESEARCH_EMBEDDED_LIMIT=LIMIT)
    return e


@pytest.fixture(scope="module")
def ws(tmp_path_factory, env):
    """A prepared workspace."""
    d = make_workspace(tmp_path_factory.mktemp("ws"))
    p = run(["prepare.py"], d, env)
    assert p.returncode == 0, p.stderr
    return d


@pytest.fixture(scope="module")
def trained(ws, env):
    p = run(["train.py"], ws, env)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p.stdout


@pytest.fixture
def prep(ws, env, monkeypatch):
    """prepare.py imported in-process, reading the prepared temp cache."""
    for k, v in env.items():
        if k.startswith("AUTORESEARCH_"):
            monkeypatch.setenv(k, v)
    monkeypatch.chdir(ws)
    spec = importlib.util.spec_from_file_location("prepare_under_test", os.path.join(HARNESS, "prepare.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_harness_toml_errors(tmp_path):
    with pytest.raises(ConfigError, match="autoresearch init"):
        Harness.load(tmp_path)
    (tmp_path / "autoresearch.toml").write_text("[harness\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Harness.load(tmp_path)
    (tmp_path / "autoresearch.toml").write_text('[harness]\neditable = ["a.py"]\nreadonly = ["a.py"]\n')
    with pytest.raises(ConfigError, match="both editable and read-only"):
        Harness.load(tmp_path)
    (tmp_path / "autoresearch.toml").write_text('[harness]\nmetrc = "x"\n')
    with pytest.raises(ConfigError, match="unknown key"):
        Harness.load(tmp_path)
    (tmp_path / "autoresearch.toml").write_text('[harness]\ndirection = "down"\n')
    with pytest.raises(ConfigError, match="direction"):
        Harness.load(tmp_path)


def test_profiles_are_literals_and_name_train_constants():
    profiles = literal_profiles()
    assert {"smoke", "cpu", "mps", "h100"} <= set(profiles)
    assert profiles["h100"]["MAX_SEQ_LEN"] == 2048 and profiles["h100"]["EVAL_TOKENS"] == 40 * 524288
    train = ast.parse(open(os.path.join(HARNESS, "train.py")).read())
    constants = {n.targets[0].id: ast.literal_eval(n.value) for n in train.body
                 if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and n.targets[0].id.isupper()}
    for name, p in profiles.items():
        assert set(p["train"]) <= set(constants), name
    # train.py ships the cpu values
    assert all(constants[k] == v for k, v in profiles["cpu"]["train"].items())


def test_the_budget_has_one_source(prep, monkeypatch, tmp_path):
    # the toml's [harness] budget (passed by the tool as AUTORESEARCH_BUDGET) wins over the profile's table
    table = prep.PROFILES["smoke"]["TIME_BUDGET"]
    monkeypatch.delenv("AUTORESEARCH_BUDGET", raising=False)
    monkeypatch.chdir(tmp_path)
    assert prep.get_profile("smoke").time_budget == table                 # no toml: the table
    (tmp_path / "autoresearch.toml").write_text(f"[harness]\nbudget = {table + 4}\n")
    assert prep.get_profile("smoke").time_budget == table + 4
    monkeypatch.setenv("AUTORESEARCH_BUDGET", str(table + 1))
    assert prep.get_profile("smoke").time_budget == table + 1
    from autoresearch.measurement import harness_env
    h = Harness(root=tmp_path, editable=("train.py",), budget=7.5)
    assert harness_env(h)["AUTORESEARCH_BUDGET"] == "7.5"


def test_prepare_is_idempotent(ws, env):
    tok = os.path.join(env["AUTORESEARCH_CACHE"], "tokenizer", f"embedded-{LIMIT}-v512", "tokenizer.json")
    mtime = os.path.getmtime(tok)
    p = run(["prepare.py"], ws, env)
    assert p.returncode == 0
    assert "already prepared" in p.stdout and "already trained" in p.stdout
    assert os.path.getmtime(tok) == mtime


def test_unknown_profile_and_missing_sources_are_clear_errors(ws, env, tmp_path):
    p = run(["prepare.py", "--profile", "tpu"], ws, env)
    assert p.returncode != 0 and "smoke, cpu, mps, h100" in p.stderr
    p = run(["prepare.py", "--data", str(tmp_path / "nope")], ws, env)
    assert p.returncode != 0 and "neither" in p.stderr
    (tmp_path / "empty").mkdir()
    p = run(["prepare.py", "--data", str(tmp_path / "empty")], ws, env)
    assert p.returncode != 0 and "holds no documents" in p.stderr


def test_local_folder_source(ws, env, tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(500)]
    for i in range(60):
        (folder / f"{i}.txt").write_text(" ".join(rng.choice(words) for _ in range(200)))
    p = run(["prepare.py", "--data", str(folder)], ws, env)
    assert p.returncode == 0, p.stderr
    assert "train /" in p.stdout and "Tokenizer: vocab 512" in p.stdout


def test_missing_data_says_what_to_run(tmp_path, env):
    d = make_workspace(tmp_path / "ws")
    empty = dict(env, AUTORESEARCH_CACHE=str(tmp_path / "empty-cache"))
    for args in (["train.py"], ["prepare.py", "--check"]):
        p = run(args, d, empty)
        assert p.returncode == 2
        assert "python prepare.py" in p.stderr and "autoresearch prepare" in p.stderr


def test_tokenizer_round_trip(prep):
    tok = prep.Tokenizer.load()
    text = "The Eiffel Tower, 330 m tall, was built in 1889. Ünïcödé: 你好"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.get_vocab_size() == 512 and tok.encode(text, prepend=tok.get_bos_token_id())[0] == tok.get_bos_token_id()


def test_packing_invariants(prep):
    tok = prep.Tokenizer.load()
    bos = tok.get_bos_token_id()
    docs = [tuple(d) for d in tok.encode(list(prep.iter_documents("embedded", "train", epochs=1)), prepend=bos)]
    loader = prep.make_dataloader(tok, 4, 64, "train")
    for _ in range(5):
        x, y = next(loader)
        assert x.shape == y.shape == (4, 64)
        assert (x[:, 0] == bos).all()
        assert (x[:, 1:] == y[:, :-1]).all()
        row = [list(map(int, r)) + [int(t)] for r, t in zip(x, y[:, -1])]
        for r in row:  # every row is whole documents, the last possibly cropped: no padding
            starts = [i for i, t in enumerate(r) if t == bos] + [len(r)]
            for a, b in zip(starts, starts[1:]):
                segment = tuple(r[a:b])
                assert any(d[:len(segment)] == segment for d in docs)


def test_evaluator_uniform_logits_is_log2_vocab(prep):
    import torch
    profile, V = prep.get_profile(), 512

    class Uniform(torch.nn.Module):
        def forward(self, idx):
            return torch.zeros(*idx.shape, V)

    bpb, counted = prep.evaluate_bpb(Uniform(), "cpu")
    tok, token_bytes = prep.Tokenizer.load(), prep.get_token_bytes()
    loader = prep.make_dataloader(tok, profile.eval_batch_size, profile.max_seq_len, "val")
    nbytes = ntok = 0
    for _ in range(profile.eval_tokens // (profile.eval_batch_size * profile.max_seq_len)):
        _, y = next(loader)
        nbytes += int(token_bytes[y].sum())
        ntok += int((token_bytes[y] > 0).sum())
    assert counted == ntok
    assert bpb == pytest.approx(math.log2(V) * ntok / nbytes, rel=1e-6)


def test_train_prints_summary_and_saves_model(trained, ws):
    s = summary(trained)
    assert set(s) == {"val_bpb", "training_seconds", "total_seconds", "peak_vram_mb", "mfu_percent",
                      "total_tokens_M", "num_steps", "num_params_M", "depth"}
    assert 1.0 < s["val_bpb"] < 9.0 and s["num_steps"] >= 2 and s["depth"] == 1
    assert s["training_seconds"] >= 3.0
    assert re.search(r"^step \d{5} .*loss: [0-9.]+ .*remaining: \d+s$", trained, re.M)
    assert (ws / ".autoresearch" / "model.pt").exists()
    # the curve for the tool's pruning: one progress line per tenth of the budget, before the summary block
    points = re.findall(r"^progress: (0\.\d0) loss: ([0-9.]+)$", trained.split("\n---\n")[0], re.M)
    assert [f for f, _ in points] == [f"0.{i}0" for i in range(1, 10)]


def test_a_run_seeds_from_seed_plus_its_offset(trained, ws, env, prep, monkeypatch, tmp_path):
    monkeypatch.setenv("AUTORESEARCH_SEED_OFFSET", "3001")
    assert prep.run_seed(42) == 3043
    monkeypatch.setenv("AUTORESEARCH_SEED_OFFSET", "not a number")
    assert prep.run_seed(42) == 42
    monkeypatch.delenv("AUTORESEARCH_SEED_OFFSET")
    assert prep.run_seed(42) == 42                    # run by hand: SEED itself
    # train.py starts from it: another offset's first step sees other initial weights
    again = run(["train.py"], ws, dict(env, AUTORESEARCH_SEED_OFFSET="1",     # (its model elsewhere: the
                                       AUTORESEARCH_MODEL_OUT=str(tmp_path / "model.pt")))   # scorer tests read ws')
    assert again.returncode == 0, again.stderr[-2000:]
    first = [re.search(r"^step 00000 .*?loss: ([0-9.]+)", out, re.M).group(1) for out in (trained, again.stdout)]
    assert first[0] != first[1]


def test_the_smoke_profile_runs_one_cpu_thread(ws, env):
    # its tiny model's steps swung 186-261 in 3 s with two threads on two cores; the other profiles keep
    # the runner's OMP_NUM_THREADS (the cores the run may use)
    code = "import prepare, torch; prepare.get_device(prepare.get_profile('{}')); print(torch.get_num_threads())"
    threads = {name: run(["-c", code.format(name)], ws, dict(env, OMP_NUM_THREADS="2")).stdout.strip()
               for name in ("smoke", "cpu")}
    assert threads == {"smoke": "1", "cpu": "2"}


def score(args, cwd, env):
    """The scorer as the tool runs it: an isolated interpreter (-I)."""
    return subprocess.run([sys.executable, "-I", "score.py", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_rescore_matches_training(trained, ws, env):
    p = score([".autoresearch/model.pt"], ws, env)
    assert p.returncode == 0, p.stderr
    assert summary(p.stdout)["val_bpb"] == pytest.approx(summary(trained)["val_bpb"], rel=1e-6)
    assert re.fullmatch(r"[0-9a-f]{16}", p.stdout.split("data_sha256:")[1].strip())


@pytest.fixture
def compact(env):
    """The scorer's compact answers (the default: log-normalisers and target logits, checked at
    random positions against whole logits asked for afterwards), asked for by name."""
    return dict(env, AUTORESEARCH_SCORE_TRANSFER="compact")


def test_whole_logits_give_the_same_score(trained, ws, env):
    p = score([".autoresearch/model.pt"], ws, dict(env, AUTORESEARCH_SCORE_TRANSFER="full"))
    assert p.returncode == 0, p.stderr
    assert summary(p.stdout)["val_bpb"] == pytest.approx(summary(trained)["val_bpb"], rel=1e-5)


def test_a_worker_whose_answers_disagree_with_its_logits_is_refused(trained, ws, compact, tmp_path):
    # train.py's code runs in the model worker: it patches what the worker answers with
    lie = ("import sys as _s\n"
           "if not _s.argv[0].endswith('train.py'):\n"
           "    _lse = torch.logsumexp\n"
           "    torch.logsumexp = lambda x, dim=-1, **k: _lse(x, dim=dim, **k) - 1.0\n")
    src = (ws / "train.py").read_text().replace("import prepare\n", "import prepare\n" + lie, 1)
    d = make_workspace(tmp_path / "liar", src)
    p = score([str(ws / ".autoresearch" / "model.pt")], d, compact)
    assert p.returncode == 1 and "does not match its own logits" in p.stderr


@pytest.mark.parametrize("transfer", ["full", "compact"])
def test_non_causal_model_is_rejected(trained, ws, env, tmp_path, transfer):
    env = dict(env, AUTORESEARCH_SCORE_TRANSFER=transfer)
    src = (ws / "train.py").read_text().replace("is_causal=True)", "is_causal=False)")
    d = make_workspace(tmp_path / "ws", src)
    p = score([str(ws / ".autoresearch" / "model.pt")], d, env)
    assert p.returncode == 3 and "model is not causal" in p.stderr


@pytest.mark.parametrize("transfer", ["full", "compact"])
def test_model_causal_only_at_a_small_batch_size_is_rejected(trained, ws, env, tmp_path, transfer):
    env = dict(env, AUTORESEARCH_SCORE_TRANSFER=transfer)
    # peeks at the next token whenever the batch is not the size an old check used (2)
    ret = "        return self.config.softcap * torch.tanh(logits / self.config.softcap)\n"
    peek = ("        out = self.config.softcap * torch.tanh(logits / self.config.softcap)\n"
            "        if idx.shape[0] != 2:\n"
            "            out = out + 5.0 * F.one_hot(torch.roll(idx, -1, 1), out.size(-1)).to(out.dtype)\n"
            "        return out\n")
    src = (ws / "train.py").read_text()
    assert ret in src
    src = src.replace(ret, peek, 1)
    d = make_workspace(tmp_path / "ws", src)
    p = score([str(ws / ".autoresearch" / "model.pt")], d, env)
    assert p.returncode == 3 and "model is not causal" in p.stderr


def test_code_in_train_py_cannot_reach_the_loss(trained, ws, env, tmp_path):
    # train.py patches torch, math and the evaluator at import: it runs only in the model worker,
    # never in the process that computes the loss, so the score is the honest one to the last digit
    cheat = ("import math as _m\n_m.log = lambda x: 1e9\n"
             "_ls = torch.log_softmax\n"
             "torch.log_softmax = lambda x, *a, **k: _ls(x, *a, **k) * 0.0\n"
             "torch.Tensor.sum = lambda self, *a, **k: torch.zeros(())\n"
             "prepare.evaluate_bpb = lambda *a, **k: (0.01, 1)\n")
    src = (ws / "train.py").read_text().replace("import prepare\n", "import prepare\n" + cheat, 1)
    d = make_workspace(tmp_path / "cheat", src)
    honest = score([str(ws / ".autoresearch" / "model.pt")], ws, env)
    p = score([str(ws / ".autoresearch" / "model.pt")], d, env)
    assert p.returncode == 0, p.stderr
    assert summary(p.stdout)["val_bpb"] == summary(honest.stdout)["val_bpb"] > 1.0


def test_the_scorer_imports_nothing_else_from_the_workspace(trained, ws, env, tmp_path):
    d = make_workspace(tmp_path / "shadow", (ws / "train.py").read_text())
    (d / "json.py").write_text("raise SystemExit('shadowed json imported')\n")
    (d / "numpy.py").write_text("raise SystemExit('shadowed numpy imported')\n")
    p = score([str(ws / ".autoresearch" / "model.pt")], d, env)
    assert p.returncode == 0, p.stderr
    assert summary(p.stdout)["val_bpb"] == pytest.approx(summary(trained)["val_bpb"], rel=1e-6)


def test_tokenizer_is_data_and_a_changed_split_is_refused(trained, ws, env, tmp_path):
    cache = env["AUTORESEARCH_CACHE"]
    tok = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(cache, "tokenizer")) for f in fs]
    assert tok and not [f for f in tok if f.endswith((".pkl", ".pt"))]          # no pickle anywhere
    assert all(f.endswith(("tokenizer.json", ".sha256")) for f in tok)
    val = os.path.join(cache, "eval", f"embedded-{LIMIT}", "val.parquet")     # the split this workspace scores
    saved = open(val, "rb").read()
    try:
        with open(val, "ab") as f:
            f.write(b"easy text")
        p = score([".autoresearch/model.pt"], ws, env)
        assert p.returncode == 2 and "changed since prepare" in p.stderr
    finally:
        open(val, "wb").write(saved)


def test_divergence_fails_fast(ws, env, tmp_path):
    src = (ws / "train.py").read_text().replace("return self.config.softcap * torch.tanh", "return float('nan') * torch.tanh")
    d = make_workspace(tmp_path / "ws", src)
    p = run(["train.py"], d, env)
    assert p.returncode == 1 and "FAIL: training diverged" in p.stdout
