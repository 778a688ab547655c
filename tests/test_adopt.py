"""Bring your own repository: the README's recipe, end to end, on a harness unlike ours (tests/toy_repo.py:
argparse flags, output files, a plain `test loss:` line), and the pieces it rests on."""

from __future__ import annotations

import subprocess

import pytest

from autoresearch import adopt as adopt_mod
from autoresearch.cli import main
from autoresearch.ledger import Ledger
from autoresearch.trial import TrialState
from tests.toy_repo import git, make_toy_repo


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def repo(tmp_path):
    return make_toy_repo(tmp_path / "toy")


def branches(root) -> list[str]:
    return git(root, "branch", "--list", "--format=%(refname:short)").split()


def test_the_recipe_end_to_end(repo, capsys):
    """README "Your own repository": adopt, commit, run; no lost row, no INVALID for run outputs, a keep."""
    # a run before anything is set up: refused with the next step, nothing created
    code, _, err = cli(capsys, "run", "-C", repo, "--max-trials", "1")
    assert code == 1 and f"autoresearch adopt {repo}" in err
    assert branches(repo) == ["main"] and not (repo / ".autoresearch").exists()

    code, out, _ = cli(capsys, "adopt", repo)
    assert code == 0, out
    toml = (repo / "autoresearch.toml").read_text()
    assert "editable = ['train.py']" in toml and "readonly = ['data/points.txt']" in toml
    assert "metric = 'test_loss'" in toml and 'direction = "minimize"' in toml and "metric_line = " in toml
    assert "\nlr = [0.0001, 0.01, \"log\"]" in toml and "\nmomentum = " in toml
    assert "\n# steps = " in toml and "\n# seed = " in toml             # run length and plumbing: not searched
    assert "git -C" in out and "commit" in out and "autoresearch run -C" in out
    assert not (repo / "out").exists()                                    # the probing run's outputs are gone
    assert "prepare.py" not in git(repo, "ls-files") and branches(repo) == ["main"]   # nothing copied or made

    # the toml not committed yet: refused with the command that commits it, before any branch is made
    code, _, err = cli(capsys, "run", "-C", repo, "--max-trials", "1")
    assert code == 1 and "autoresearch.toml not committed" in err and "git -C" in err
    assert branches(repo) == ["main"] and not (repo / ".autoresearch").exists()

    git(repo, "add", "autoresearch.toml")
    git(repo, "commit", "-q", "-m", "autoresearch harness")
    (repo / "notes.txt").write_text("mine\n")                               # the user's untracked files
    (repo / "run.log").write_text("autoresearch run > run.log\n")
    code, out, err = cli(capsys, "run", "-C", repo, "--max-trials", "6", "--tag", "toy")
    assert code == 0, err

    trials = Ledger(repo, "toy", "test_loss").load()
    assert [t.number for t in trials] == list(range(7))                     # baseline + 6, none lost
    rows = (repo / "results.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["commit", "test_loss", "memory_gb", "status", "description"]
    assert len(rows) == 1 + len(trials)
    assert [t for t in trials if t.state == TrialState.INVALID] == [], [t.reason for t in trials]
    baseline = trials[0]
    assert baseline.values == (pytest.approx(4.354799),) * 3 and "WARNING: identical repeats" in baseline.reason
    kept = [t for t in trials[1:] if t.state == TrialState.KEEP]
    assert kept and kept[-1].value < baseline.value                          # the script improved: kept
    assert git(repo, "rev-parse", "HEAD") == kept[-1].commit
    # the user's files: still there, never committed, never stashed; the run's outputs: gone
    assert (repo / "notes.txt").read_text() == "mine\n" and (repo / "run.log").exists()
    assert "notes.txt" not in git(repo, "log", "--all", "--name-only", "--format=")
    assert git(repo, "stash", "list") == ""
    assert git(repo, "status", "--porcelain", "--untracked-files=all").splitlines() == ["?? notes.txt", "?? run.log"]

    code, out, _ = cli(capsys, "status", "-C", repo)
    assert code == 0
    assert "python    " in out and "the tool's own" in out
    assert "not held  re-scoring: there is no `score` command, so test_loss is what the editable script prints" in out
    assert "protected read-only files checksummed before and after every run (data/points.txt)" in out
    assert "keeping only gains above" in out


def test_adopt_then_run_again_resumes_without_losing_rows(repo, capsys):
    cli(capsys, "adopt", repo)
    git(repo, "add", "autoresearch.toml")
    git(repo, "commit", "-q", "-m", "harness")
    assert cli(capsys, "run", "-C", repo, "--max-trials", "1", "--baseline-runs", "1", "--tag", "r")[0] == 0
    assert cli(capsys, "run", "-C", repo, "--max-trials", "1", "--tag", "r")[0] == 0
    trials = Ledger(repo, "r", "test_loss").load()
    assert [t.number for t in trials] == [0, 1, 2]
    assert len((repo / "results.tsv").read_text().splitlines()) == 4


def test_init_never_lays_the_gpt_harness_into_a_repository_with_commits(repo, capsys):
    code, _, err = cli(capsys, "init", repo)
    assert code == 1 and f"autoresearch adopt {repo}" in err
    assert not (repo / "prepare.py").exists() and not (repo / "autoresearch.toml").exists()
    assert branches(repo) == ["main"]


def test_adopt_refuses_an_existing_toml_and_a_repository_without_commits(tmp_path, repo, capsys):
    (repo / "autoresearch.toml").write_text("[harness]\n")
    code, _, err = cli(capsys, "adopt", repo)
    assert code == 1 and "--force" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    subprocess.run(["git", "init", "-q", str(empty)], check=True)
    code, _, err = cli(capsys, "adopt", empty)
    assert code == 1 and "no commits" in err


def test_adopt_says_what_to_print_when_no_metric_is_seen(repo, capsys):
    (repo / "quiet.py").write_text("print('hello')\n")
    git(repo, "add", "quiet.py")
    git(repo, "commit", "-q", "-m", "quiet")
    code, _, err = cli(capsys, "adopt", repo, "--run", "python quiet.py")
    assert code == 1 and "printed no `name: number` line" in err and "hello" in err
    assert not (repo / "autoresearch.toml").exists()


def test_adopt_keeps_flags_given_on_the_run_command_out_of_the_search(repo, capsys):
    code, out, _ = cli(capsys, "adopt", repo, "--run", "python train.py --lr 0.004")
    assert code == 0, out
    toml = (repo / "autoresearch.toml").read_text()
    assert "run = 'python train.py --lr 0.004'" in toml
    assert "\n# lr = " in toml and "--lr is set on the run command" in toml
    assert "\nmomentum = " in toml


@pytest.mark.parametrize("output, metric, direction", [
    ("step 100 | train loss: 2.5 test loss: 2.6\nstep 200 | train loss: 2.1 test loss: 2.2\n", "test_loss", "minimize"),
    ("step 250: train loss 2.1003, val loss 2.2157\n", "val_loss", "minimize"),
    ("epoch 1 - loss: 0.52 - accuracy: 0.81 - val_accuracy: 0.79\n", "val_accuracy", "maximize"),
    ("training...\n---\nval_bpb: 1.234\ntraining_seconds: 60.0\n", "val_bpb", "minimize"),
    ("iter 10: loss 3.21, time 12.00ms\n", "loss", "minimize"),
])
def test_read_metric_finds_the_held_out_score(output, metric, direction):
    found = adopt_mod.read_metric(output)
    assert (found.metric, found.direction) == (metric, direction)


def test_metric_line_reads_the_last_match():
    from autoresearch.harness import Harness
    from autoresearch.runner import RunResult
    found = adopt_mod.read_metric("step 1 train loss: 9 test loss: 8.5\nstep 2 train loss: 3 test loss: 2.25\n")
    h = Harness(root=".", metric=found.metric, metric_line=found.line)
    r = h.summarize(RunResult(0, False, 1.0, "", tail="step 1 train loss: 9 test loss: 8.5\n"
                                                     "step 2 train loss: 3 test loss: 2.25\n"))
    assert r.metric("test_loss") == 2.25
    assert h.summarize(RunResult(0, False, 1.0, "", tail="nothing\n")).metric("test_loss") is None


def test_adopt_warns_when_the_metric_is_not_a_held_out_score(repo, capsys):
    (repo / "fit.py").write_text("for s in range(3):\n    print(f'step {s} | loss {3 - s}.5 | step time 1.0ms')\n")
    git(repo, "add", "fit.py")
    git(repo, "commit", "-q", "-m", "fit")
    code, out, _ = cli(capsys, "adopt", repo, "--run", "python fit.py")
    assert code == 0 and "metric    loss (minimize; 1.5" in out
    assert "warning   loss is not a held-out score" in out
