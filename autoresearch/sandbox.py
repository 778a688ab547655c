"""Sandbox: the walls around code an agent wrote (a training run, the model half of the scorer).

On Linux with bubblewrap (Debian package `bubblewrap`) every run gets:
- its own PID namespace, killed whole when the run ends: a daemon that double-forks and calls
  setsid dies with it, and the tool's processes (and their /proc/<pid>/environ) are out of sight;
- no network, its own IPC and UTS namespaces, no capabilities, a new terminal session;
- the whole file system read-only; the home folder, /tmp and the workspace's `.git` and
  `.autoresearch` replaced by empty folders; the venv, the interpreter, the data cache and the
  workspace mounted back read-only; files the harness names as `hidden` (the evaluation splits)
  not there at all; one scratch folder writable, where HOME, TMPDIR and the model file point.

`wrap()` returns the argv prefix that does this. Where bubblewrap is missing or cannot make
namespaces (macOS, a locked-down container), `detect()` says so once, naming what is then not
enforced, and runs go unsandboxed.

    box = detect("auto"); argv = box.wrap(["python", "train.py"], cwd=root, scratch=tmp)
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from autoresearch.errors import ConfigError

NOT_ENFORCED = ("no sandbox (bubblewrap): runs share the tool's user, network and process table; "
                "processes a run leaves behind are killed only by process group; the workspace, "
                "its .git and .autoresearch, the venv and the data cache are writable by the run, and "
                "the evaluation splits are readable by it. Install bubblewrap (apt-get install "
                "bubblewrap) to enforce these.")

TMP_SIZE = 256 * 2**20        # bytes of the run's private /tmp (RAM): TMPDIR points at scratch on disk


@dataclass(frozen=True)
class Sandbox:
    kind: str                 # "bwrap" or "none"
    binary: str = ""
    note: str = ""            # why there is none, said once at start

    @property
    def enforced(self) -> bool:
        return self.kind == "bwrap"

    def wrap(self, argv: list[str], cwd: str | Path, scratch: str | Path, hidden=(), readable=(),
             writable=()) -> list[str]:
        """argv run inside the walls, in cwd (a workspace, or a worktree of one: the repository it
        belongs to has its .git and .autoresearch hidden all the same); scratch must exist.
        writable: folders of cwd (existing) the run writes into, each backed by scratch/outputs/<folder>:
        what the run writes there lands in its scratch folder and goes with it."""
        if not self.enforced:
            return list(argv)
        cwd, scratch = Path(cwd).resolve(), Path(scratch).resolve()
        out = [self.binary, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
               "--size", str(TMP_SIZE), "--tmpfs", "/tmp"]
        for dev in sorted(Path("/dev").glob("nvidia*")):      # CUDA: the GPU device files
            out += ["--dev-bind", str(dev), str(dev)]
        emptied = [Path("/tmp").resolve()]
        home = Path(os.path.expanduser("~")).resolve()
        if home not in (Path("/"), emptied[0]):
            out += ["--tmpfs", str(home)]                     # keys, tokens, the agents' logins
            emptied.append(home)
        # back, read-only, what a run needs from there: the interpreter, venv, import paths, cwd, data
        needed = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path, *readable) if p}
        needed = {p.expanduser().resolve() for p in needed} | {cwd}
        out += _binds(needed, emptied)
        # then hidden again: the study's own folders, and what the harness hides (the evaluation splits)
        repo = _repository(cwd)
        covered = []
        out += _hide([repo / ".git", repo / ".autoresearch", *(Path(h).expanduser().resolve() for h in hidden)],
                     covered)
        # back from under those: a worktree's folder (it lives in .autoresearch), the model to score
        out += _binds({cwd, *(Path(p).expanduser().resolve() for p in readable)}, covered)
        if repo != cwd:
            out += _hide([cwd / ".git", cwd / ".autoresearch"], covered)
        out += ["--bind", str(scratch), str(scratch)]
        for rel in writable:
            backing = scratch / "outputs" / rel
            backing.mkdir(parents=True, exist_ok=True)
            out += ["--bind", str(backing), str(cwd / rel)]
        out += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session"]
        if os.geteuid() == 0:
            out += ["--cap-drop", "ALL"]
        out += ["--chdir", str(cwd), "--"]
        return out + list(argv)


    def wrap_agent(self, argv: list[str], cwd: str | Path, keep=(), hidden=(), writable=()) -> list[str]:
        """argv for an agent's program (claude, codex, a command) editing the checkout at cwd. It keeps
        the network (it calls its API) and cwd writable (the loop checks what it changed); the rest of
        the file system is read-only: the repository's .git too (the loop also checks it), and its
        .autoresearch (the ledger, with the hidden holdout scores) is not there at all, nor are the
        `hidden` paths (the evaluation splits). The home folder is an empty one but for `keep` (the
        agent's own login state, writable) and, read-only, what the program needs from there (its
        interpreter, the PATH's folders). `writable`: more folders it writes (its TMPDIR, its prompt).
        Its own PID namespace: it sees none of the tool's processes, and none of its own outlives it."""
        if not self.enforced:
            return list(argv)
        cwd = Path(cwd).resolve()
        out = [self.binary, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        emptied = []
        home = Path(os.path.expanduser("~")).resolve()
        if home != Path("/") and home.is_dir():
            out += ["--tmpfs", str(home)]
            emptied.append(home)
        program = Path(shutil.which(argv[0]) or argv[0]).resolve()
        path = [Path(d) for d in os.environ.get("PATH", "").split(os.pathsep) if d]
        needed = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path) if p}
        repo = _repository(cwd)
        packages = [d for d in program.parents if d.name == "node_modules"]     # an npm CLI's own packages
        needed |= {packages[-1] if packages else program.parent, repo / ".git",
                   *(d.parent if d.name == "bin" else d for d in path)}
        out += _binds({p.expanduser().resolve() for p in needed} | {cwd}, emptied)
        covered = []
        out += _hide([repo / ".autoresearch", *(Path(h).expanduser().resolve() for h in hidden)], covered)
        for p in keep:                                    # the agent's own state, writable
            p = Path(p).expanduser()
            if p.exists():
                out += ["--bind", str(p.resolve()), str(p.resolve())]
        for p in (cwd, *(Path(w).resolve() for w in writable)):
            out += ["--bind", str(p), str(p)]
        out += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session"]
        if os.geteuid() == 0:
            out += ["--cap-drop", "ALL"]
        return out + ["--chdir", str(cwd), "--", *argv]


def _hide(paths, covered: list) -> list[str]:
    """An empty folder over each folder, /dev/null over each file; covered gets the folders."""
    out = []
    for p in dict.fromkeys(paths):
        if p.is_dir() and not p.is_symlink():
            out += ["--tmpfs", str(p)]
            covered.append(p)
        elif p.exists() or p.is_symlink():
            out += ["--ro-bind", "/dev/null", str(p)]
    return out


def _binds(paths, emptied) -> list[str]:
    """--ro-bind for each existing path under an emptied folder, parents before children."""
    out, done = [], []
    for p in sorted(paths, key=lambda p: len(p.parts)):
        if p.exists() and any(_under(p, e) for e in emptied) and not any(_under(p, d) for d in done):
            out += ["--ro-bind", str(p), str(p)]
            done.append(p)
    return out


def _repository(cwd: Path) -> Path:
    """The main repository of a worktree (its .git is a file naming .git/worktrees/<name>), else cwd."""
    dotgit = cwd / ".git"
    if dotgit.is_file():
        text = dotgit.read_text(errors="replace").strip()
        if text.startswith("gitdir:"):
            gitdir = Path(text[7:].strip())
            gitdir = gitdir if gitdir.is_absolute() else (cwd / gitdir)
            if gitdir.parent.name == "worktrees":
                return gitdir.resolve().parent.parent.parent
    return cwd


def _under(p: Path, root: Path) -> bool:
    return p == root or root in p.parents


@functools.lru_cache(maxsize=None)
def _probe(binary: str) -> str:
    """'' when bubblewrap can make the namespaces a run needs here, else why not."""
    try:
        r = subprocess.run([binary, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid",
                            "--unshare-net", "--die-with-parent", "--", "/bin/true"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return "" if r.returncode == 0 else (r.stderr.strip() or f"exit {r.returncode}")


def detect(mode: str = "auto") -> Sandbox:
    """mode: auto (bubblewrap when it works here, else none with a note), bwrap (required), none."""
    mode = (mode or "auto").lower()
    if mode not in ("auto", "bwrap", "none"):
        raise ConfigError(f"sandbox = {mode!r}: use auto, bwrap or none")
    if mode == "none":
        return Sandbox("none", note="sandbox = none was asked for: " + NOT_ENFORCED)
    binary = shutil.which("bwrap") if sys.platform.startswith("linux") else None
    why = "bubblewrap is not installed" if binary is None else _probe(binary)
    if sys.platform != "linux" and not sys.platform.startswith("linux"):
        why = f"no sandbox on {sys.platform}"
    if not why:
        return Sandbox("bwrap", binary=binary)
    if mode == "bwrap":
        raise ConfigError(f"sandbox = bwrap, but {why}: install bubblewrap (apt-get install bubblewrap) or set "
                          f"sandbox = \"auto\"")
    return Sandbox("none", note=f"{why}: {NOT_ENFORCED}")


def private() -> None:
    """Linux: this process's /proc entries (environ, with the agents' keys) unreadable to other
    processes of the same user, whether or not runs are sandboxed (PR_SET_DUMPABLE 0)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)    # PR_SET_DUMPABLE
        except Exception:
            pass
