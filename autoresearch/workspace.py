"""Workspace: the git repository holding one harness, on branch `autoresearch/<tag>`.

Commit, reset, diff and worktrees here are the only changes the tool makes to code. Every
experiment is one commit; the branch advances only on keep; each trial's commit is also
pinned under refs/autoresearch/<tag>/<n> so a discarded experiment's diff stays readable.

The tool's own files (results.tsv, .autoresearch/) are never the user's changes: every status,
commit, stash and clean here leaves them out by pathspec, whatever the repository's .gitignore
says, and they are listed in .git/info/exclude. So are the files that were untracked when the
study started (`leave_alone`): never deleted, committed, stashed or blocking. What a run writes
is removed after its measurement (`drop_run_outputs`), so an agent is judged on its edit only.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path

from autoresearch import hashing
from autoresearch.errors import WorkspaceError
from autoresearch.processes import dies_with_us
from autoresearch.runner import scrub_env

# Every git command of the tool: no hooks, no fsmonitor, no signing program, no external diff or
# text conversion, no pager; replace objects ignored (GIT_NO_REPLACE_OBJECTS below), so nothing an
# agent or a run wrote into .git can run a program or swap what a commit holds.
SAFE = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "commit.gpgSign=false",
        "-c", "tag.gpgSign=false", "-c", "core.pager=cat", "-c", "core.attributesFile=/dev/null",
        "-c", "core.askPass=", "-c", "credential.helper="]
GUARDED = ("config", "info", "hooks", "packed-refs", "objects/info/alternates", "refs/replace", "shallow")


def git_argv(*args: str) -> list[str]:
    """git with no hook, no fsmonitor, no signing or credential program; `git diff` without an
    external diff or textconv program (an empty diff.external would make git try to run "")."""
    if args and args[0] == "diff":
        args = ("diff", *(f for f in ("--no-ext-diff", "--no-textconv") if f not in args), *args[1:])
    return ["git", *SAFE, *args]


def git_env() -> dict:
    """git sees no credential of the tool's environment and no replace objects."""
    keep = {k: v for k, v in os.environ.items() if k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
    return scrub_env(extra={**keep, "GIT_NO_REPLACE_OBJECTS": "1", "GIT_TERMINAL_PROMPT": "0",
                            "GIT_OPTIONAL_LOCKS": "0"})

GITIGNORE = """# autoresearch: results.tsv, logs and caches stay out of git (a reset never loses a row)
results.tsv
progress.png
report.md
report.html
.autoresearch/
__pycache__/
*.pyc
*.pt
"""


# the tool's own paths: never staged, stashed, cleaned or counted as a change, whatever .gitignore says
TOOL_PATHS = ("results.tsv", ".autoresearch")
# written to .git/info/exclude so the user's `git status` does not list them either
EXCLUDE = ("results.tsv", "progress.png", "report.md", ".autoresearch/")


def default_tag() -> str:
    """Today's date like upstream: nov26."""
    return datetime.date.today().strftime("%b%d").lower()


def _git(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """git dies with the tool (kill -9 included): an orphaned git must not race the next start,
    which then finds at most a stale index.lock to remove. Output that is not UTF-8 (a file name)
    decodes with surrogateescape: it round-trips to the same bytes and never raises."""
    if argv and argv[0] == "git":
        argv = git_argv(*argv[1:])
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, encoding="utf-8", errors="surrogateescape",
                          env=git_env(), preexec_fn=dies_with_us())


def diff_text(root: Path, a: str, b: str) -> str:
    """`git diff a b` for people to read (pages, tracking): the diff, or why there is none; never raises."""
    r = _git(["git", "diff", "--no-color", a, b, "--"], cwd=root)
    if r.returncode != 0:
        return f"(diff unavailable: {r.stderr.strip() or 'git diff failed'})"
    return r.stdout.encode("utf-8", "surrogateescape").decode("utf-8", "replace")     # for a page: never a lone surrogate


def _identity_args(cwd: Path) -> list[str]:
    """Commit as the user when git knows them, else as autoresearch."""
    args = []
    for key, default in (("user.name", "autoresearch"), ("user.email", "autoresearch@localhost")):
        r = _git(["git", "config", key], cwd=cwd)
        if r.returncode != 0 or not r.stdout.strip():
            args += ["-c", f"{key}={default}"]
    return args


class Workspace:
    def __init__(self, root: str | Path, tag: str | None = None):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise WorkspaceError(f"{self.root} does not exist: run `autoresearch init {root}` first")
        top = _git(["git", "rev-parse", "--show-toplevel"], cwd=self.root)
        if top.returncode != 0:
            raise WorkspaceError(f"{self.root} is not a git repository: run `autoresearch init {root}` "
                                 f"(or `git init` there and commit your harness)")
        if Path(top.stdout.strip()).resolve() != self.root:
            raise WorkspaceError(f"{self.root} is inside the git repository {top.stdout.strip()}, not its "
                                 f"root: run autoresearch in the repository's top folder")
        self._ident = None
        self.tag = tag or self._tag_from_branch() or default_tag()
        self._left_alone: tuple[str, ...] | None = None

    # ------------------------------------------------------------------ git plumbing
    def git(self, *args: str, check: bool = True, cwd: Path | None = None) -> str:
        r = _git(["git", *args], cwd=cwd or self.root)
        if check and r.returncode != 0:
            raise WorkspaceError(f"git {' '.join(args)} failed: {r.stderr.strip() or r.stdout.strip()}")
        return r.stdout.strip()

    @property
    def branch(self) -> str:
        return f"autoresearch/{self.tag}"

    def _tag_from_branch(self) -> str | None:
        name = self.git("rev-parse", "--abbrev-ref", "HEAD", check=False)
        return name.split("/", 1)[1] if name.startswith("autoresearch/") else None

    def current_branch(self) -> str:
        return self.git("rev-parse", "--abbrev-ref", "HEAD", check=False)

    def branch_exists(self) -> bool:
        return bool(self.git("rev-parse", "--verify", "--quiet", f"refs/heads/{self.branch}", check=False))

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def checkout(self, create: bool = False) -> None:
        """Switch to the tag's branch (creating it at HEAD when asked); never resets it."""
        if self.current_branch() == self.branch:
            return
        if self.branch_exists():
            self.git("checkout", "-q", self.branch)
        elif create:
            self.git("checkout", "-q", "-b", self.branch)
        else:
            raise WorkspaceError(f"no branch {self.branch}: run `autoresearch init {self.root} --tag {self.tag}`")

    # ------------------------------------------------------------------ what is not the study's
    @property
    def _left_alone_path(self) -> Path:
        return self.root / ".autoresearch" / self.tag / "untracked.json"

    @property
    def left_alone(self) -> tuple[str, ...]:
        """Paths untracked before the study started (a folder ends with /): never touched."""
        if self._left_alone is None:
            try:
                self._left_alone = tuple(json.loads(self._left_alone_path.read_text()))
            except (FileNotFoundError, json.JSONDecodeError, TypeError):
                self._left_alone = ()
        return self._left_alone

    def _pathspec(self, adding: bool = False) -> list[str]:
        """`-- . :(exclude)...`: everything but the tool's files and the files left alone. (`git add` refuses
        a pathspec naming an ignored path, even to exclude it, and skips those anyway: not named then.)"""
        paths = [*TOOL_PATHS, *self.left_alone]
        if adding:
            r = _git(["git", "-c", "core.quotePath=false", "check-ignore", "--", *paths], cwd=self.root)
            ignored = set(r.stdout.splitlines())
            paths = [p for p in paths if p not in ignored and p.rstrip("/") not in ignored]
        return ["--", ".", *(f":(exclude,literal){p}" for p in paths)]

    def untracked(self) -> list[str]:
        """Untracked, not ignored, not the tool's and not left alone; a wholly untracked folder as `dir/`."""
        r = _git(["git", "status", "--porcelain=v1", "-z", "--untracked-files=normal", *self._pathspec()],
                 cwd=self.root)
        if r.returncode != 0:
            raise WorkspaceError(f"git status failed: {r.stderr.strip()}")
        return sorted(item[3:] for item in r.stdout.split("\0") if item.startswith("?? "))

    def leave_alone(self, required=(), adopt_new: bool = True, refuse_changes: bool = False) -> tuple[str, ...]:
        """Before a study: the files untracked now are the user's, never the study's (remembered for the
        tag, so a resume knows them). `required` (the harness' own files) must be committed instead.
        adopt_new=False (a study killed mid-trial): what appeared since is the trial's, not the user's.
        refuse_changes: any other change to tracked files is refused too, before anything is written."""
        tracked = self.git("ls-files", "--", *TOOL_PATHS, check=False)
        if tracked:
            raise WorkspaceError(f"{self.root}: git tracks the tool's own {tracked.splitlines()[0]}, which a reset "
                                 f"would rewind: `git -C {self.root} rm -r --cached {' '.join(TOOL_PATHS)}` and "
                                 f"commit, then run again")
        now = self.untracked()
        blocking = [p for p in now if any(r == p or (p.endswith("/") and r.startswith(p)) for r in required)]
        if blocking:
            raise WorkspaceError(f"{self.root}: {', '.join(blocking)} not committed: the study runs what git "
                                 f"holds. `git -C {self.root} add {' '.join(blocking)} && git -C {self.root} "
                                 f"commit -m 'autoresearch harness'`, then run again")
        keep = tuple(sorted({*self.left_alone, *(now if adopt_new else ())}))
        self._left_alone = keep
        if refuse_changes and self.is_dirty():
            raise WorkspaceError(f"{self.root} has uncommitted changes ({', '.join(self.changed_files()[:5])}): "
                                 f"commit or stash them before a study starts")
        self.exclude_tool_files()
        if keep != self.left_alone or not self._left_alone_path.exists():
            self._left_alone_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._left_alone_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(list(keep)))
            tmp.replace(self._left_alone_path)
        return keep

    def exclude_tool_files(self) -> None:
        """List the tool's files in .git/info/exclude (local to this clone, never committed)."""
        common = self.git("rev-parse", "--git-common-dir", check=False) or ".git"
        path = (self.root / common / "info" / "exclude").resolve()
        try:
            text = path.read_text()
        except FileNotFoundError:
            text = ""
        missing = [line for line in EXCLUDE if line not in text.splitlines()]
        if missing:
            path.parent.mkdir(parents=True, exist_ok=True)
            head = "" if not text or text.endswith("\n") else "\n"
            path.write_text(text + head + "# autoresearch: the tool's own files\n" + "\n".join(missing) + "\n")

    def drop_run_outputs(self) -> None:
        """After a measurement: back to exactly HEAD. What the run wrote (untracked before it, not ignored)
        is removed and what it changed is restored, so the next diff is the agent's edit only."""
        self.reset_hard("HEAD")

    def status(self) -> list[tuple[str, str]]:
        """(code, path) for every change against HEAD, untracked files included; ignored ones, the tool's
        files and the files left alone not."""
        r = _git(["git", "status", "--porcelain=v1", "-z", "--untracked-files=all", *self._pathspec()],
                 cwd=self.root)
        if r.returncode != 0:
            raise WorkspaceError(f"git status failed: {r.stderr.strip()}")
        out = r.stdout
        entries, parts, i = [], out.split("\0"), 0
        while i < len(parts):
            item = parts[i]
            i += 1
            if not item:
                continue
            code, path = item[:2], item[3:]
            if code[0] in "RC":        # renamed/copied: the source path follows
                entries.append((code, parts[i]))
                i += 1
            entries.append((code, path))
        return entries

    def changed_files(self) -> list[str]:
        return sorted({path for _, path in self.status()})

    def is_dirty(self) -> bool:
        return bool(self.status())

    def commit(self, message: str, paths: list[str] | None = None) -> str:
        """Commit every change (or only paths) and return the new commit."""
        if paths is None:
            self.git("add", "-A", *self._pathspec(adding=True))
        else:
            self.git("add", "-A", "--", *paths)
        if self._ident is None:
            self._ident = _identity_args(self.root)
        self.git(*self._ident, "commit", "-q", "--no-verify", "--allow-empty", "-m", message)
        return self.head()

    def reset_hard(self, commit: str) -> None:
        """Make the branch and the working tree exactly commit; ignored files, the tool's files (results,
        logs) and the files left alone stay."""
        self.git("reset", "-q", "--hard", commit)
        self.git("clean", "-q", "-fd", *self._pathspec())

    def stash(self, message: str) -> bool:
        """Stash every change, untracked included; True when something was stashed."""
        if not self.is_dirty():
            return False
        self.git("stash", "push", "-q", "-u", "-m", message, *self._pathspec(adding=True))
        return True

    def pin(self, number: int, commit: str) -> None:
        """Keep a trial's commit reachable (git gc would prune a discarded one)."""
        self.git("update-ref", f"refs/autoresearch/{self.tag}/{number}", commit)

    def has_commit(self, commit: str) -> bool:
        return bool(commit) and bool(self.git("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}", check=False))

    def diff(self, a: str, b: str, paths: list[str] | None = None) -> str:
        return self.git("diff", a, b, "--", *(paths or []))

    # ------------------------------------------------------------------ what agents and runs must not touch
    def guard(self) -> dict:
        """A snapshot of the parts of .git that could make a later git command run a program, hide a
        file or swap a commit's content: config, info/ (exclude, attributes), hooks, replace refs."""
        gitdir = self.root / ".git"
        out = {}
        for name in GUARDED:
            p = gitdir / name
            files = [f for f in p.rglob("*") if f.is_file() or f.is_symlink()] if p.is_dir() else [p] if p.exists() else []
            for f in files:
                try:
                    out[str(f.relative_to(gitdir))] = f.read_bytes() if not f.is_symlink() else b"-> " + os.readlink(f).encode()
                except OSError:
                    out[str(f.relative_to(gitdir))] = b"<unreadable>"
        return out

    def tampered(self, snapshot: dict) -> list[str]:
        """What changed in .git since guard(), put back as it was (new files removed); [] when nothing."""
        now = self.guard()
        changed = sorted(k for k in set(now) | set(snapshot) if now.get(k) != snapshot.get(k))
        gitdir = self.root / ".git"
        for name in changed:
            p = gitdir / name
            if p.is_symlink() or p.exists():
                p.unlink()
            if name in snapshot and not snapshot[name].startswith(b"-> "):
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(snapshot[name])
        return changed

    def checksums(self, names) -> dict[str, str]:
        return hashing.checksums(self.root, names)

    def code_hash(self, names) -> str:
        return hashing.files_hash(self.root, names)

    # ------------------------------------------------------------------ worktrees (parallel trials)
    def add_worktree(self, path: Path, commit: str) -> Path:
        self.git("worktree", "add", "-q", "--detach", "--force", str(path), commit)
        return path

    def remove_worktree(self, path: Path) -> None:
        # twice --force: also a worktree still locked "initializing" by a `git worktree add` that was
        # killed with the tool (prune and a single --force both leave those)
        self.git("worktree", "remove", "--force", "--force", str(path), check=False)
        self.git("worktree", "prune", check=False)

    def worktrees(self) -> list[Path]:
        """The paths of the worktrees git knows of, the main one first (also those whose folder is gone)."""
        out = self.git("worktree", "list", "--porcelain", check=False)
        return [Path(line[len("worktree "):]) for line in out.splitlines() if line.startswith("worktree ")]


def init(directory: str | Path, profile: str | None = None, tag: str | None = None, data: str = "embedded") -> Workspace:
    """Make (or reuse) a git repository with the default harness and the tag's branch.

    An existing harness (autoresearch.toml present) is left as it is; an existing tag is
    checked out, never overwritten.
    """
    from autoresearch import harness as harness_mod

    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / ".git").exists():
        r = _git(["git", "init", "-q", str(directory)], cwd=directory)
        if r.returncode != 0:
            raise WorkspaceError(f"git init {directory} failed: {r.stderr.strip()}")
    ws = Workspace(directory, tag=tag or default_tag())
    has_commits = bool(ws.git("rev-parse", "--verify", "--quiet", "HEAD", check=False))
    if has_commits and ws.is_dirty():
        raise WorkspaceError(f"{directory} has uncommitted changes ({', '.join(ws.changed_files()[:5])}): "
                             f"commit or stash them first")
    if ws.branch_exists():
        ws.checkout()
        return ws
    if not (directory / harness_mod.TOML).exists():
        if has_commits:
            raise WorkspaceError(f"{directory} already holds commits: `init` lays the GPT harness into a new folder "
                                 f"only. For your own repository run `autoresearch adopt {directory}`")
        profile = profile or harness_mod.default_profile()
        clash = [n for n in (*harness_mod.HARNESS_FILES, ".gitignore") if (directory / n).exists()]
        if [n for n in clash if n != ".gitignore"]:
            raise WorkspaceError(f"{directory} already has {', '.join(clash)} but no autoresearch.toml: "
                                 f"init an empty folder, or write an autoresearch.toml for your harness")
        harness_mod.copy_into(directory, profile, data)
    elif profile:
        loaded = harness_mod.Harness.load(directory)
        if loaded.profile and loaded.profile != profile:
            raise WorkspaceError(f"{directory} is set up for profile {loaded.profile!r}, not {profile!r}: "
                                 f"init another folder for another profile")
    ws.exclude_tool_files()
    ignore = directory / ".gitignore"
    existing = ignore.read_text() if ignore.exists() else ""
    missing = [l for l in GITIGNORE.splitlines() if l and not l.startswith("#") and l not in existing.splitlines()]
    if missing:
        ignore.write_text(existing + ("" if existing.endswith("\n") or not existing else "\n") + GITIGNORE)
    if ws.is_dirty() or not has_commits:
        if has_commits:
            ws.checkout(create=True)
        else:
            ws.git("checkout", "-q", "-b", ws.branch)
        ws.commit(f"autoresearch: harness for tag {ws.tag}")
    else:
        ws.checkout(create=True)
    return ws
