"""Small modules: knobs, judge, ledger, config, runner, harness config."""

from __future__ import annotations

import math
import os
import sys
import time

import pytest

from autoresearch import knobs, runner
from autoresearch.config import Config
from autoresearch.errors import ConfigError
from autoresearch.harness import Harness
from autoresearch.judge import CONFIRM, DISCARD, KEEP, Judge, greedy
from autoresearch.ledger import HEADER, Ledger
from autoresearch.trial import Trial, TrialState

SRC = '''"""doc"""
import os
DEPTH = 4          # layers
LR: float = 0.04   # learning rate
NAME = "x"  # a string
NEG = -1e-3
EXPR = 2**3
lower = 5
'''


def test_knobs_find_only_literal_constants():
    found = knobs.find(SRC)
    assert {k: v.value for k, v in found.items()} == {"DEPTH": 4, "LR": 0.04, "NAME": "x", "NEG": -0.001}


def test_knobs_rewrite_keeps_comments_and_layout():
    out = knobs.rewrite(SRC, {"DEPTH": 6, "LR": 0.05, "NEG": -2e-4})
    assert "DEPTH = 6          # layers\n" in out
    assert "LR: float = 0.05   # learning rate\n" in out
    assert "NEG = -0.0002\n" in out
    assert out.replace("6 ", "4 ", 1).replace("0.05", "0.04").replace("-0.0002", "-1e-3") == SRC
    with pytest.raises(KeyError):
        knobs.rewrite(SRC, {"EXPR": 1})


def test_judge_uses_measured_noise():
    j = Judge(sigma=2.0, confirm_band=0.5, max_repeats=3)
    j.observe([1.00, 1.02, 0.98])
    assert j.sd == pytest.approx(0.02)
    best = [1.00, 1.02, 0.98]
    assert j.decide([0.90], best).verdict == KEEP          # gain 0.1 >> 2 * 0.02 * 1.15
    assert j.decide([1.01], best).verdict == DISCARD       # worse
    d = j.decide([0.955], best)                            # gain 0.045 ~ threshold 0.046
    assert d.verdict == CONFIRM and d.threshold == pytest.approx(2 * 0.02 * math.sqrt(1 + 1 / 3))
    assert j.decide([0.955, 0.955, 0.955], best).verdict == KEEP   # threshold shrinks with n
    assert greedy([0.999], best) and not greedy([1.01], best)


def test_judge_maximize_and_min_delta():
    j = Judge(direction="maximize", min_delta=0.5)
    assert j.decide([10.6], [10.0]).verdict == KEEP
    assert j.decide([10.4], [10.0]).verdict == DISCARD


def test_ledger_append_load_and_torn_line(tmp_path):
    led = Ledger(tmp_path, "tag")
    led.open()
    t = Trial(number=0, state=TrialState.KEEP, description="base\tline\nbreak", commit="abcdef1234", value=1.5,
              values=(1.5,), metrics={"peak_vram_mb": 2048.0})
    led.append(t)
    led.append(t.replace(number=1, state=TrialState.TIMEOUT, value=None, description="hang"))
    with open(led.jsonl, "a") as f:
        f.write('{"number": 2, "sta')        # killed mid-write
    assert [x.number for x in led.load()] == [0, 1]
    led.open()
    assert [x.number for x in led.load()] == [0, 1]
    rows = led.tsv.read_text().splitlines()
    assert rows[0] + "\n" == HEADER
    assert rows[1] == "abcdef1\t1.500000\t2.0\tkeep\tbase line break"
    assert rows[2] == "abcdef1\t0.000000\t0.0\tcrash\t[timeout] hang"


def test_ledger_open_keeps_a_foreign_results_tsv(tmp_path):
    (tmp_path / "results.tsv").write_text(HEADER + "1234567\t0.9\t1.0\tkeep\tsomeone else's\n")
    Ledger(tmp_path, "new").open()
    assert (tmp_path / "results.tsv").read_text() == HEADER
    assert "someone else's" in (tmp_path / ".autoresearch" / "results.tsv.bak").read_text()


def test_config_precedence_and_errors():
    cfg = Config.load({"baseline_runs": 5, "sigma": 3}, environ={"AUTORESEARCH_SIGMA": "1.5"}, sigma=None,
                      max_trials=7)
    assert (cfg.baseline_runs, cfg.sigma, cfg.max_trials) == (5, 1.5, 7)
    assert Config.load({}, environ={}, sigma=2.5).sigma == 2.5
    with pytest.raises(ConfigError, match="unknown setting 'bogus'"):
        Config.load({"bogus": 1}, environ={})
    with pytest.raises(ConfigError, match="not a valid int"):
        Config.load({"baseline_runs": "three"}, environ={})
    with pytest.raises(ConfigError, match="executor"):
        Config.load({}, environ={}, executor="slurm")


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


def test_parse_summary_takes_last_block():
    text = "---\nval_bpb: 9\n...\nstep 1 | loss: 2\n---\nval_bpb:          0.997900\npeak_vram_mb:     45,060.2\nname: x\n\nafter"
    assert runner.parse_summary(text) == {"val_bpb": 0.9979, "peak_vram_mb": 45060.2, "name": "x"}
    assert runner.parse_summary("no block") == {}


def test_scrub_env_drops_credentials():
    env = runner.scrub_env({"PATH": "/bin", "OPENAI_API_KEY": "k", "HF_TOKEN": "t", "AUTORESEARCH_PROFILE": "cpu",
                            "AWS_SECRET_ACCESS_KEY": "s", "RANDOM_VAR": "r", "CUDA_VISIBLE_DEVICES": "0"})
    assert set(env) == {"PATH", "AUTORESEARCH_PROFILE", "CUDA_VISIBLE_DEVICES", "PYTHONUNBUFFERED"}


def test_runner_timeout_kills_the_whole_group(tmp_path):
    # the child starts a grandchild that would outlive it; both must die at the limit
    script = ("import subprocess, sys, time\n"
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
              "open('grandchild.pid', 'w').write(str(p.pid)); print('started', flush=True); time.sleep(600)\n")
    t0 = time.monotonic()
    r = runner.run([sys.executable, "-c", script], tmp_path, timeout=1.5, log_path=tmp_path / "log")
    assert r.timed_out and r.killed == "timeout" and time.monotonic() - t0 < 10
    pid = int((tmp_path / "grandchild.pid").read_text())
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "started" in (tmp_path / "log").read_text()


def test_runner_memory_limit(tmp_path):
    script = "import time\nx = bytearray(400 * 2**20)\nx[::4096] = b'1' * len(x[::4096])\ntime.sleep(30)\n"
    r = runner.run([sys.executable, "-c", script], tmp_path, timeout=20, log_path=tmp_path / "log",
                   memory_limit_mb=200)
    assert r.killed == "memory" and not r.ok and r.seconds < 15


def test_runner_missing_program_is_a_result(tmp_path):
    r = runner.run(["/nonexistent/prog"], tmp_path, timeout=5, log_path=tmp_path / "log")
    assert r.returncode == 127 and "could not start" in r.tail


def test_runner_progress_callback(tmp_path):
    seen = []
    script = "import time\nfor i in range(3):\n    print(f'step {i} | loss: {3-i}.5 | remaining: {9-i}s', flush=True); time.sleep(0.1)\n"
    runner.run([sys.executable, "-c", script], tmp_path, timeout=10, log_path=tmp_path / "log",
               on_progress=lambda p: seen.append((p.step, p.loss, p.remaining)))
    assert seen[-1] == (2, 1.5, 7.0)


def test_console_live_line_and_plain_lines():
    import io

    from autoresearch.display import Console
    from autoresearch.runner import Progress

    plain = io.StringIO()
    c = Console(stream=plain, live=False)
    c.trial_started(3, "MATRIX_LR 0.04 -> 0.05", 60)
    c.progress(Progress(step=10, loss=3.2, remaining=42))          # not a terminal: no live line
    best = Trial(number=0, state=TrialState.KEEP, description="baseline", value=1.9, values=(1.9,))
    c.trial_done(Trial(number=3, state=TrialState.DISCARD, description="MATRIX_LR 0.04 -> 0.05", value=1.95,
                       values=(1.95,), reason="discard: gain -0.05"), best)
    assert plain.getvalue().splitlines() == [
        "[trial 3] MATRIX_LR 0.04 -> 0.05",
        "[trial 3] DISCARD val_bpb=1.950000 MATRIX_LR 0.04 -> 0.05 (discard: gain -0.05)"]
    live = io.StringIO()
    c = Console(stream=live, live=True)
    c.best_value = 1.9
    c.trial_started(3, "x", 60)
    c.progress(Progress(step=10, loss=3.2, remaining=42))
    assert "\r\033[K" in live.getvalue()
    assert "trial 3 | 42s left | step 10 | loss 3.2000 | best val_bpb 1.900000" in live.getvalue()


def test_judge_prior_noise_counts_as_two_degrees_of_freedom():
    j = Judge(prior_sd=1.0)
    assert j.sd == 1.0
    j.observe([5.0, 5.0])                      # one dof of zero spread
    assert j.sd == pytest.approx((2 / 3) ** 0.5)
    j.fit([[1.0, 3.0]])                        # refit: ss 2, dof 1
    assert j.sd == pytest.approx(((2 + 2) / 3) ** 0.5)
    assert Judge().sd == 0.0


def test_judge_does_not_trust_zero_noise():
    j = Judge()
    j.fit([[5.0, 5.0, 5.0]])                  # a seeded, deterministic script: identical repeats
    assert j.zero_noise and j.sd == 0.0
    assert j.decide([4.996], [5.0, 5.0, 5.0]).verdict == DISCARD     # 0.004 < 0.1% of 5.0
    assert j.decide([4.99], [5.0, 5.0, 5.0]).verdict == KEEP
    assert "WARNING: identical repeats" in j.describe(3, [5.0] * 3) and "0.005" in j.describe(3, [5.0] * 3)
    assert "one run measures no noise" in Judge().describe(1, [5.0])
    j = Judge(min_delta=0.05)
    j.fit([[5.0, 5.0]])
    assert j.decide([4.96], [5.0, 5.0]).verdict == DISCARD and "min_delta 0.05" in j.describe(2, [5.0, 5.0])
    j = Judge(prior_sd=0.01)
    j.fit([[5.0, 5.0]])
    assert not j.zero_noise and "WARNING" not in j.describe(2)
    j = Judge()
    j.fit([[5.0, 5.1]])
    assert j.describe(2) == "noise sd 0.070711 from 2 runs"


def test_results_tsv_column_is_named_after_the_metric(tmp_path):
    led = Ledger(tmp_path, "t", metric="test_loss")
    led.open()
    assert (tmp_path / "results.tsv").read_text() == "commit\ttest_loss\tmemory_gb\tstatus\tdescription\n"
    assert HEADER.split("\t")[1] == "val_bpb"                     # the GPT harness: upstream's notebook reads it


def test_python_is_the_repositorys_environment_when_it_has_one(tmp_path):
    h = Harness(root=tmp_path, run="python train.py --x 1")
    assert h.command(h.run) == [sys.executable, "train.py", "--x", "1"] and "the tool's own" in h.interpreter()[1]
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(sys.executable)
    assert h.command(h.run)[0] == str(venv / "python") and h.interpreter()[1] == "the repository's .venv"
    assert h.command("./run.sh python")[0] == "./run.sh"
    other = Harness(root=tmp_path, python="envs/x/bin/python")
    with pytest.raises(ConfigError, match="harness.python = 'envs/x/bin/python' does not exist"):
        other.interpreter()
    other = Harness(root=tmp_path, python=sys.executable)
    assert other.command("python3 a.py")[0] == sys.executable and "python =" in other.interpreter()[1]


def test_a_trial_that_never_ran_is_labelled_with_its_number():
    import io
    from autoresearch.display import Console
    out = io.StringIO()
    c = Console(stream=out, live=False)
    c.trial_started(0, "baseline", 60)
    c.trial_done(Trial(number=1, state=TrialState.INVALID, description="x", reason="no change"), None)
    assert out.getvalue().splitlines()[-1].startswith("[trial 1] INVALID")


def test_protection_says_what_holds_without_a_score_command(tmp_path):
    held, not_held = Harness(root=tmp_path, score="python prepare.py --score {model}").protection()
    assert not_held == [] and any("re-scores every saved model" in line for line in held)
    held, not_held = Harness(root=tmp_path, metric="test_loss", readonly=("data.txt",)).protection()
    assert "checksummed before and after every run (data.txt)" in held[0] and "time limit" in held[1]
    assert len(not_held) == 1 and "no `score` command, so test_loss is what the editable script prints" in not_held[0]


def test_outputs_are_folders_inside_the_repository(tmp_path):
    for bad in ('["../elsewhere"]', '["/tmp/x"]', '[".git"]', '"out"'):
        (tmp_path / "autoresearch.toml").write_text(f"[harness]\noutputs = {bad}\n")
        with pytest.raises(ConfigError, match="outputs"):
            Harness.load(tmp_path)
    (tmp_path / "autoresearch.toml").write_text('[harness]\noutputs = ["out", "runs/logs"]\n')
    assert Harness.load(tmp_path).outputs == ("out", "runs/logs")
