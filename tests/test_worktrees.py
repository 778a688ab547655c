"""worktrees.py: detached checkouts for proposals; re-basing onto a newer best, conflicts named."""

from __future__ import annotations

import shutil

from autoresearch.workspace import Workspace
from autoresearch.worktrees import Worktrees
from tests.fakes import git, set_knob


def test_add_commit_rebase_and_conflict(ws_xy):
    trees = Worktrees(Workspace(ws_xy))
    base = git(ws_xy, "rev-parse", "HEAD")
    a, b, c = trees.add("a", base), trees.add("b", base), trees.add("c", base)
    set_knob(a, "X", 2.0)
    set_knob(b, "Y", 2.0)
    set_knob(c, "X", 2.5)
    ca, cb, cc = (trees.commit(p, f"change {p.name}") for p in (a, b, c))
    assert git(ws_xy, "rev-parse", "HEAD") == base                    # the main tree never moved
    picked, why = trees.rebase(b, cb, ca)                             # Y onto X: clean
    assert why == "" and git(ws_xy, "rev-parse", f"{picked}^") == ca
    assert "X = 2.0" in (b / "train.py").read_text() and "Y = 2.0" in (b / "train.py").read_text()
    assert trees.conflicts(ca, cc) and not trees.conflicts(ca, cb)
    picked, why = trees.rebase(c, cc, ca)                             # X onto X: a conflict
    assert picked == "" and why == "conflicted in train.py"
    assert git(c, "status", "--porcelain") == ""                      # left clean, on the new base
    trees.remove_all()
    assert len(git(ws_xy, "worktree", "list").splitlines()) == 1


def test_worktrees_a_killed_git_worktree_add_left_are_removed(ws_xy):
    # `git worktree add` keeps the new worktree locked ("initializing") until it is done: killed with
    # the tool, it leaves it so, and a single --force or a prune leave such a worktree in place
    trees = Worktrees(Workspace(ws_xy))
    base = git(ws_xy, "rev-parse", "HEAD")
    kept, gone = trees.add("t-1", base), trees.add("t-2", base)
    for path in (kept, gone):
        admin = git(path, "rev-parse", "--git-dir")
        (path / admin / "locked").write_text("initializing")
    shutil.rmtree(gone)                         # killed before its checkout was written
    assert "locked" in git(ws_xy, "worktree", "list")
    trees.remove_all()
    assert len(git(ws_xy, "worktree", "list").splitlines()) == 1
    again = trees.add("t-1", base)               # the name is free again
    assert (again / "train.py").exists()
