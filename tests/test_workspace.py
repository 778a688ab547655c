"""Workspace: the tool's files are never the user's, whatever .gitignore says; files untracked before
the study are left alone; what a run writes is dropped after its measurement."""

from __future__ import annotations

import pytest

from autoresearch.config import Config
from autoresearch.errors import WorkspaceError
from autoresearch.study import Study
from autoresearch.trial import TrialState
from autoresearch.workspace import Workspace
from tests.fakes import ScriptedAgent, edit, git, knob, make_fake_workspace

# a .gitignore that un-ignores the tool's files on purpose
HOSTILE = "*.tsv\n!results.tsv\n.autoresearch/\n!.autoresearch/\n"


@pytest.fixture
def hostile(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.txt").write_text("a\n")
    (root / ".gitignore").write_text(HOSTILE)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


def test_tool_files_are_never_changes_nor_cleaned_nor_stashed(hostile):
    ws = Workspace(hostile, tag="t")
    (hostile / "results.tsv").write_text("commit\tval_bpb\n")
    (hostile / ".autoresearch" / "t").mkdir(parents=True)
    (hostile / ".autoresearch" / "t" / "trials.jsonl").write_text("{}\n")
    assert ws.status() == [] and not ws.is_dirty()
    (hostile / "a.txt").write_text("changed\n")
    (hostile / "new.txt").write_text("new\n")
    assert ws.changed_files() == ["a.txt", "new.txt"]
    assert ws.stash("in flight")
    assert (hostile / "results.tsv").exists() and (hostile / ".autoresearch/t/trials.jsonl").exists()
    assert "results.tsv" not in git(hostile, "stash", "show", "--include-untracked", "--name-only")
    (hostile / "b.txt").write_text("b\n")
    ws.commit("b")
    assert git(hostile, "show", "--name-only", "--format=", "HEAD").split() == ["b.txt"]
    ws.reset_hard("HEAD~1")                                   # the cleaning step
    assert not (hostile / "b.txt").exists()
    assert (hostile / "results.tsv").read_text() == "commit\tval_bpb\n"
    assert (hostile / ".autoresearch/t/trials.jsonl").read_text() == "{}\n"
    ws.exclude_tool_files()
    assert "results.tsv" in (hostile / ".git/info/exclude").read_text().splitlines()


def test_files_untracked_before_the_study_are_left_alone(hostile):
    ws = Workspace(hostile, tag="t")
    (hostile / "notes.txt").write_text("mine\n")
    (hostile / "scratch").mkdir()
    (hostile / "scratch" / "x.bin").write_text("x")
    assert ws.leave_alone() == ("notes.txt", "scratch/")
    assert ws.status() == []
    (hostile / "out.txt").write_text("a run's output\n")
    ws.drop_run_outputs()
    assert not (hostile / "out.txt").exists()
    assert (hostile / "notes.txt").exists() and (hostile / "scratch" / "x.bin").exists()
    assert Workspace(hostile, tag="t").left_alone == ("notes.txt", "scratch/")   # remembered for a resume


def test_an_uncommitted_harness_file_blocks_and_a_tracked_ledger_is_refused(hostile):
    ws = Workspace(hostile, tag="t")
    (hostile / "autoresearch.toml").write_text("[harness]\n")
    with pytest.raises(WorkspaceError, match="autoresearch.toml not committed: .*git -C .* add autoresearch.toml"):
        ws.leave_alone(required=("autoresearch.toml", "train.py"))
    (hostile / "autoresearch.toml").unlink()
    (hostile / "a.txt").write_text("changed\n")
    with pytest.raises(WorkspaceError, match=r"uncommitted changes \(a.txt\)"):
        ws.leave_alone(refuse_changes=True)
    assert not (hostile / ".autoresearch").exists()         # refused before anything is written
    git(hostile, "checkout", "a.txt")
    (hostile / "results.tsv").write_text("x\n")
    git(hostile, "add", "results.tsv")
    git(hostile, "commit", "-q", "-m", "someone committed a ledger")
    with pytest.raises(WorkspaceError, match="tracks the tool's own results.tsv"):
        ws.leave_alone()


def test_a_study_with_run_outputs_and_user_files_records_no_invalid(tmp_path):
    """The fake harness made to write out/ every run (named in `outputs`: the sandbox lets it write there);
    the user's notes.txt beside it."""
    ws = make_fake_workspace(tmp_path / "ws")
    edit(lambda s: s.replace('print("---")', 'os.makedirs("out", exist_ok=True); '
                                             'open(f"out/events.{os.getpid()}", "w").write("e")\nprint("---")'),
         "writes outputs")(ws)
    toml = ws / "autoresearch.toml"
    toml.write_text(toml.read_text().replace('run = "python train.py"', 'run = "python train.py"\noutputs = ["out"]'))
    git(ws, "commit", "-q", "-am", "the harness writes out/")
    (ws / "notes.txt").write_text("mine\n")
    study = Study(ws, agent=ScriptedAgent([knob("X", 2.0), knob("X", 0.5), knob("X", 3.0)]),
                  config=Config.load({"baseline_runs": 2}, environ={}))
    study.optimize(max_trials=3)
    assert [t.state for t in study.trials] == [TrialState.KEEP, TrialState.KEEP, TrialState.DISCARD, TrialState.KEEP]
    assert not (ws / "out").exists() and (ws / "notes.txt").read_text() == "mine\n"
    assert git(ws, "status", "--porcelain") == "?? notes.txt"


def test_after_a_kill_mid_trial_new_files_are_the_trials_not_the_users(hostile):
    ws = Workspace(hostile, tag="t")
    (hostile / "notes.txt").write_text("mine\n")
    ws.leave_alone()
    (hostile / "half-written.ckpt").write_text("x")           # appeared while a trial was in flight
    assert Workspace(hostile, tag="t").leave_alone(adopt_new=False) == ("notes.txt",)
    assert ws.changed_files() == ["half-written.ckpt"]        # stashed by the resume, never lost
