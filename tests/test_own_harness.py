"""Settings a user's own harness relies on (issue 15): zero noise, metric columns, interpreter,
labels, protection lines, output folders."""

from __future__ import annotations

import sys

import pytest

from autoresearch.errors import ConfigError
from autoresearch.harness import Harness
from autoresearch.judge import DISCARD, KEEP, Judge
from autoresearch.ledger import HEADER, Ledger
from autoresearch.trial import Trial, TrialState


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
    c.trial_started(0, "baseline")
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
