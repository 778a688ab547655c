"""Worktrees: the detached checkouts where proposals are made and runs happen.

The main working tree stays on the best commit; each candidate gets its own detached worktree
under `.autoresearch/<tag>/worktrees/`, where the agent edits, the change is committed, and the
run happens. `rebase()` cherry-picks a candidate onto a newer best. A killed driver leaves its
worktrees behind; the next start removes them (their trials simply run again). Every git command
that moves a tree or a ref goes through `lock`.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

from autoresearch.workspace import Workspace, _identity_args, git_argv, git_env


class Worktrees:
    def __init__(self, ws: Workspace):
        self.ws = ws
        self.dir = ws.root / ".autoresearch" / ws.tag / "worktrees"
        self.lock = threading.RLock()
        self._ident: list | None = None

    def add(self, name: str, commit: str) -> Path:
        path = self.dir / name
        with self.lock:
            if path.exists():
                self.remove(path)
            self.dir.mkdir(parents=True, exist_ok=True)
            self.ws.add_worktree(path, commit)
        return path

    def remove(self, path: Path | None) -> None:
        if path is None:
            return
        with self.lock:
            if path.exists():
                self.ws.remove_worktree(path)
                shutil.rmtree(path, ignore_errors=True)

    def remove_all(self) -> None:
        """What a killed driver (or this one) left behind."""
        with self.lock:
            here = self.dir.resolve()
            known = [p for p in self.ws.worktrees() if here in p.resolve().parents]    # a killed add's too
            for path in dict.fromkeys([*(self.dir.iterdir() if self.dir.exists() else ()), *known]):
                self.ws.remove_worktree(path)
                shutil.rmtree(path, ignore_errors=True)
            self.ws.git("worktree", "prune", check=False)

    def tree(self, path: Path) -> Workspace:
        return Workspace(path, tag=self.ws.tag)

    def commit(self, path: Path, message: str) -> str:
        with self.lock:
            return self.tree(path).commit(message)

    def conflicts(self, a: str, b: str) -> bool:
        """Would changes a and b (on the same base) conflict? (git merge-tree; False when git cannot tell)"""
        r = subprocess.run(git_argv("merge-tree", "--write-tree", "--no-messages", a, b), cwd=self.ws.root,
                           capture_output=True, text=True, env=git_env())
        return r.returncode == 1

    def rebase(self, path: Path, commit: str, onto: str) -> tuple[str, str]:
        """Cherry-pick commit onto `onto` in the worktree at path: (new commit, "") or ("", why not).
        A commit whose parent is not in `onto`'s history (a tree node's child: its node was never
        kept) brings all it holds since the common ancestor, squashed into one commit."""
        wt = self.tree(path)
        if self._ident is None:
            self._ident = _identity_args(self.ws.root)
        with self.lock:
            commit = self._squashed(wt, commit, onto)
            wt.git("reset", "-q", "--hard", onto)      # a detached worktree: HEAD moves, no branch
            r = subprocess.run(git_argv(*self._ident, "cherry-pick", commit), cwd=path, capture_output=True, text=True,
                               env=git_env())
            if r.returncode == 0:
                return wt.head(), ""
            conflicted = wt.git("diff", "--name-only", "--diff-filter=U", check=False).split()
            wt.git("cherry-pick", "--abort", check=False)
            wt.git("reset", "-q", "--hard", onto, check=False)
        text = (r.stdout + r.stderr).strip()
        if conflicted:
            return "", f"conflicted in {', '.join(conflicted)}"
        if "empty" in text:
            return "", "empty"
        return "", f"failed: {text.splitlines()[-1] if text else r.returncode}"

    def _squashed(self, wt: Workspace, commit: str, onto: str) -> str:
        """commit itself when its parent is an ancestor of onto; else one commit of its tree on the
        common ancestor (the node's change and the child's together), with the child's message."""
        ancestor = wt.git("merge-base", commit, onto, check=False)
        if not ancestor or wt.git("rev-parse", f"{commit}^") == ancestor:
            return commit
        message = wt.git("log", "-1", "--format=%B", commit)
        return wt.git(*self._ident, "commit-tree", f"{commit}^{{tree}}", "-p", ancestor, "-m", message)
