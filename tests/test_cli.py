"""The CLI through its entry point: each bad input is one clear error with exit code 1."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autoresearch.cli import main
from autoresearch.ledger import Ledger
from tests.fakes import git, set_knob


def cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_status_report(ws, capsys):
    code, out, err = cli(capsys, "run", "-C", str(ws), "--max-trials", "2", "--baseline-runs", "1", "--seed", "1")
    assert code == 0, err
    assert "stopped: reached 2 trials" in err
    assert (ws / "progress.png").stat().st_size > 1000
    assert "## Trials" in (ws / "report.md").read_text()
    code, out, _ = cli(capsys, "status", "-C", str(ws))
    assert code == 0
    assert "tag t: 3 trials recorded" in out and "running   nothing" in out
    assert "baseline  val_bpb 5.000000" in out
    code, out, _ = cli(capsys, "report", "-C", str(ws))
    assert code == 0 and "progress.png" in out


def test_python_dash_m_and_agents_listing(tmp_path):
    r = subprocess.run([sys.executable, "-m", "autoresearch", "agents"], capture_output=True, text=True)
    assert r.returncode == 0
    names = {line.split()[0]: line for line in r.stdout.splitlines()}
    assert {"builtin", "claude", "codex", "openai", "anthropic", "command"} <= set(names)
    assert names["builtin"].rstrip().endswith("ok")


@pytest.mark.parametrize("case", ["not_git", "unknown_agent", "unknown_profile", "bad_toml", "dirty", "unprepared",
                                  "other_harness", "no_trials_report", "bad_option"])
def test_bad_input_is_one_clear_error(case, ws, tmp_path, capsys, monkeypatch):
    before = None
    if case == "not_git":
        plain = tmp_path / "plain"
        plain.mkdir()
        argv, expect = ["run", "-C", str(plain)], "not a git repository"
    elif case == "unknown_agent":
        argv, expect = ["run", "-C", str(ws), "--agent", "gpt5"], "unknown agent 'gpt5'; known: anthropic, builtin"
    elif case == "unknown_profile":
        argv, expect = ["init", str(tmp_path / "new"), "--profile", "tpu"], "unknown profile 'tpu'; known: smoke, cpu"
    elif case == "bad_toml":
        (ws / "autoresearch.toml").write_text("[harness]\nbudget = -1\n")
        argv, expect = ["run", "-C", str(ws)], "harness.budget must be a non-negative number"
    elif case == "dirty":
        set_knob(ws, "X", 2.0)
        argv, expect = ["run", "-C", str(ws)], "uncommitted changes (train.py)"
    elif case == "unprepared":
        monkeypatch.setenv("AUTORESEARCH_FAKE_UNPREPARED", "1")
        argv, expect = ["run", "-C", str(ws)], "run `autoresearch prepare`"
    elif case == "other_harness":
        assert cli(capsys, "run", "-C", str(ws), "--max-trials", "0", "--baseline-runs", "1")[0] == 0
        before = (ws / "results.tsv").read_text()
        (ws / "prepare.py").write_text("CHANGED = 1\n")
        git(ws, "commit", "-qam", "other")
        argv, expect = ["run", "-C", str(ws)], "holds results of another harness"
    elif case == "no_trials_report":
        argv, expect = ["report", "-C", str(ws)], "no trials recorded"
    elif case == "bad_option":
        argv, expect = ["run", "-C", str(ws), "-o", "nonsense"], "is not KEY=VALUE"
    code, out, err = cli(capsys, *argv)
    assert code == 1
    assert err.startswith("autoresearch: error: ") and expect in err, err
    assert "Traceback" not in err
    if before is not None:
        assert (ws / "results.tsv").read_text() == before      # nothing recorded lost or rewritten
        assert len(Ledger(ws, "t").load()) == 1


def test_init_makes_a_workspace_and_resumes_a_tag(tmp_path, capsys):
    d = tmp_path / "w"
    code, out, err = cli(capsys, "init", str(d), "--profile", "smoke", "--tag", "exp1")
    assert code == 0, err
    head = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=d, capture_output=True, text=True).stdout
    assert head.strip() == "autoresearch/exp1"
    for name in ("prepare.py", "train.py", "program.md", "autoresearch.toml", ".gitignore"):
        assert (d / name).exists()
    assert 'profile = "smoke"' in (d / "autoresearch.toml").read_text()
    assert "results.tsv" in (d / ".gitignore").read_text()
    # the smoke profile's train defaults were written into train.py's literals
    assert "COMPILE = False" in (d / "train.py").read_text()
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=d, capture_output=True, text=True).stdout
    assert cli(capsys, "init", str(d), "--tag", "exp1")[0] == 0      # again: resumes, never overwrites
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=d, capture_output=True, text=True).stdout == sha
