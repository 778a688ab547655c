"""Ray executor: each run is a Ray task, on any node of a cluster (a local Ray by default).

A task materialises the trial on its node (the commit's tracked files, sent as content: the
editable ones with each job, the rest put in the object store once), makes sure the harness'
data is prepared on that node (its `check` command, else `prepare` under a node-wide lock; the
default harness caches under AUTORESEARCH_CACHE, which is passed on), runs
`base.run_job()` there and returns the Measurement with the log text. A task asks for
one GPU where the cluster has GPUs, one CPU otherwise. Ray is imported only here, only when used:

    pip install 'autoresearch[ray]'
    autoresearch run --workers 8 --executor ray [--ray-address HOST:6379]

The compile cache travels too. A study's runs start from torch.compile's cache as its baseline's first
run left it (measurement.measure); a node that cannot see the driver's workspace (another machine)
would compile every trial from nothing, slower than the baseline's warm runs and so judged worse.
A baseline run there returns its cache, the driver keeps it as the study's, and every later task
carries it (once per node in the object store). Only the baseline's (the human's code's) cache is
ever shipped: a trial's is the agent's output. A node keeps each study's copy (named by its digest) in
its temp folder: a few MB of kernels, and on the CPU inductor's precompiled C++ header (about 150 MB,
which every sandboxed run would otherwise build again: measurement.headers). A node keeps the NODE_COPIES
copies used last and removes older ones when it keeps a new one (a temp folder is often memory).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from autoresearch.errors import AutoresearchError
from autoresearch.hashing import contents_hash
from autoresearch.executors.base import Executor, Job, Outcome, Setup, crashed
from autoresearch.measurement import compile_cache, seed_cache

MAX_LOG_BYTES = 20 * 2**20
NODE_COPIES = 3          # studies' compile caches a node keeps (the ones used last); older ones are removed


def _ray():
    try:
        import ray
    except ImportError as e:
        raise AutoresearchError("the ray executor needs Ray: pip install 'autoresearch[ray]' "
                                f"(or pip install ray) ({e})") from None
    return ray


def _tracked_files(root: Path) -> dict[str, bytes]:
    from autoresearch.workspace import git_argv, git_env
    out = subprocess.run(git_argv("ls-files", "-z"), cwd=root, capture_output=True, check=True, env=git_env()).stdout
    files = {}
    for name in out.decode().split("\0"):
        if name and (root / name).is_file():
            files[name] = (root / name).read_bytes()
    return files


def _node() -> tuple[str, str]:
    import socket
    try:
        import ray
        node_id = ray.get_runtime_context().get_node_id()[:8]
    except Exception:
        node_id = ""
    return socket.gethostname() + (f"/{node_id}" if node_id else ""), f"pid {os.getpid()}"


def _ensure_prepared(root: Path, setup: Setup) -> str:
    """'' when the harness' data is there on this node (prepared once per node); else why not."""
    from autoresearch import preparation
    harness = setup.harness
    key = repr((sorted(setup.readonly_sums.items()), harness.prepare, harness.profile, harness.data,
                os.environ.get("AUTORESEARCH_CACHE", "")))
    return preparation.ensure(root, harness, key)


def _tree(root: Path) -> dict[str, bytes]:
    """A folder's files by relative path (a compile cache: a few MB)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def shipment(cache: Path) -> tuple[str, dict[str, bytes]]:
    """A compile cache as it travels to the nodes: (its digest, its files)."""
    files = _tree(cache)
    return contents_hash(files, length=16), files


def node_copy(digest: str) -> Path:
    """Where a node keeps its copy of a shipped compile cache."""
    return Path(tempfile.gettempdir()) / "autoresearch-compile" / digest


def _keep(files: dict[str, bytes], cache: Path) -> None:
    """Write a shipped compile cache where runs start from it (atomically; the first one there wins)."""
    if cache.exists():
        return
    with tempfile.TemporaryDirectory(prefix="autoresearch-cache-") as tmp:
        for name, data in files.items():
            if Path(name).is_absolute() or ".." in Path(name).parts:
                continue                             # (_tree never makes such a name)
            p = Path(tmp, name)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        seed_cache(Path(tmp), cache)


def _node_cache(job: Job, setup: Setup, shipped) -> Path | None:
    """The compile cache this task's run starts from. None: the study's own, where the driver's workspace is
    on this node's disk (a local Ray, a shared disk). Else this node's copy of the baseline's (shipped:
    (digest, files)), kept in its temp folder by digest; with none shipped yet, a folder of the task's own
    (a baseline run's: it compiles from nothing and returns what it leaves)."""
    if compile_cache(setup.harness).parent.is_dir():
        return None
    if shipped is None:
        return node_copy(f"{setup.tag}-{job.key}-{os.getpid()}")
    copy = node_copy(shipped[0])
    if not copy.exists():
        _keep(shipped[1], copy)
        prune_copies(copy.parent, NODE_COPIES)
    try:
        os.utime(copy)                    # used now: the last a later prune removes
    except OSError:
        pass
    return copy


def prune_copies(folder: Path, keep: int) -> list[str]:
    """Remove all but the `keep` compile-cache copies in folder used last (by mtime: each use touches its
    copy). A copy being written (`*.tmp`) or a baseline task's own folder (it removes it itself) is left
    alone. Returns the names removed. Where more than `keep` studies use one node at once, a task may find its
    copy gone: it then keeps it again from what it carries."""
    try:
        copies = [p for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"[0-9a-f]{16}", p.name)]
        copies.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return []
    for p in copies[keep:]:
        shutil.rmtree(p, ignore_errors=True)
    return [p.name for p in copies[keep:]]


def run_task(job: Job, common: dict, editable: dict, setup: Setup, env: dict, memory_limit_mb: float,
             shipped=None) -> dict:
    """In a Ray worker: materialise the files, prepare once per node, measure, return the outcome.
    shipped: the study's compile cache (digest, files), once the driver has one (module docstring)."""
    from autoresearch import runner
    from autoresearch.executors.base import crashed as crash_outcome
    from autoresearch.executors.base import run_job
    os.environ.update(env)               # AUTORESEARCH_CACHE and friends: what the driver had
    node, worker = _node()
    root = Path(tempfile.mkdtemp(prefix=f"autoresearch-{setup.tag}-{job.key}-"))
    cache, own = None, False
    try:
        cache = _node_cache(job, setup, shipped)
        own = cache is not None and shipped is None      # a folder of this task's own
        for name, data in {**common, **editable}.items():
            p = root / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        log = root / ".autoresearch" / "run.log"
        why = _ensure_prepared(root, setup)
        if why:
            m = crash_outcome(why, log).measurement
        else:
            memory_limit_mb = memory_limit_mb or runner.default_memory_limit_mb(
                int(env.get("_AUTORESEARCH_RUNS_PER_NODE", "1")))
            here = dataclasses.replace(job, root=root, log=log, model=root / ".autoresearch" / "model.pt",
                                       keep_model=False)
            m = run_job(here, setup, memory_limit_mb, cache=cache)
        texts = {}
        if own and job.seeds and cache.is_dir():          # a baseline run's cache: back to the driver
            texts["compile_cache"] = _tree(cache)
        for key, path in (("log", log), ("score_log", log.with_suffix(".score.log"))):
            if path.exists():
                with open(path, "rb") as f:
                    texts[key] = f.read(MAX_LOG_BYTES)
        return {"measurement": m, "node": node, "worker": worker, **texts}
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if own:
            shutil.rmtree(cache, ignore_errors=True)


class RayExecutor(Executor):
    name = "ray"
    local_models = False                 # a model stays on its node: the holdout is scored there

    def __init__(self, slots: int = 1, address: str = "", num_cpus: int | None = None):
        self.slots = max(1, int(slots))
        self.address = address
        self.num_cpus = num_cpus
        self._owns = False
        self._live: dict = {}                # ObjectRef -> Job
        self._common: dict[str, object] = {}  # hash of the shared files -> ObjectRef
        self._cancelled: set = set()
        self._shipped = None                 # the study's compile cache in the object store, once it has one

    def start(self, setup: Setup) -> None:
        ray = _ray()
        if not ray.is_initialized():
            kw = dict(include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
            if self.address:
                import autoresearch
                # the nodes get this very package (their Python still needs the harness' own deps)
                kw["runtime_env"] = {"py_modules": [str(Path(autoresearch.__file__).parent)]}
                ray.init(address=self.address, **kw)
            else:
                ray.init(num_cpus=self.num_cpus or self.slots, **kw)
            self._owns = True
        gpus = ray.cluster_resources().get("GPU", 0)
        self.resources = {"num_gpus": 1, "num_cpus": 1} if gpus >= 1 else {"num_cpus": 1}
        self._remote = ray.remote(max_retries=0)(run_task).options(**self.resources)
        self._setup = setup
        self._setup_ref = ray.put(setup)
        self._env = {k: v for k, v in os.environ.items() if k == "AUTORESEARCH_CACHE"}
        self._env["_AUTORESEARCH_RUNS_PER_NODE"] = str(1 if gpus else min(self.slots, os.cpu_count() or 1))
        self._memory = setup.memory_limit_mb

    def submit(self, job: Job):
        ray = _ray()
        files = _tracked_files(job.root)
        editable = {n: files.pop(n) for n in self._setup.harness.editable if n in files}
        key = contents_hash(files)
        if key not in self._common:
            self._common[key] = ray.put(files)        # the same for every trial: sent to each node once
        cache = compile_cache(self._setup.harness)
        if self._shipped is None and cache.is_dir():
            self._shipped = ray.put(shipment(cache))
        ref = self._remote.remote(job, self._common[key], editable, self._setup_ref, self._env, self._memory,
                                  self._shipped)
        self._live[ref] = job
        return ref

    def wait(self, handles: list, timeout: float | None = None) -> list:
        if not handles:
            return []
        ray = _ray()
        ready, rest = ray.wait(handles, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        return ready

    def result(self, ref) -> Outcome:
        ray = _ray()
        job = self._live.pop(ref)
        cancelled = ref in self._cancelled
        self._cancelled.discard(ref)
        try:
            out = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return Outcome(crashed("cancelled", job.log).measurement, cancelled=True)
        except ray.exceptions.RayError as e:      # the worker or its node died, the task failed
            if cancelled:
                return Outcome(crashed("cancelled", job.log).measurement, cancelled=True)
            text = str(e).strip().splitlines()
            return crashed(f"the Ray task died mid-run ({type(e).__name__}: {text[0] if text else ''})", job.log)
        m = out["measurement"]
        log = Path(job.log)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(out.get("log", b""))
        if "score_log" in out:
            log.with_suffix(".score.log").write_bytes(out["score_log"])
        if "compile_cache" in out:                   # a baseline run's, off this disk: the study's from now on
            _keep(out["compile_cache"], compile_cache(self._setup.harness))
        m = dataclasses.replace(m, result=dataclasses.replace(m.result, log_path=str(log)))
        return Outcome(m, out.get("worker", ""), out.get("node", ""), cancelled=cancelled)

    def cancel(self, ref) -> None:
        ray = _ray()
        self._cancelled.add(ref)
        try:
            ray.cancel(ref)     # KeyboardInterrupt in the task: the runner kills the run's process group
        except Exception:
            pass

    def close(self) -> None:
        if not hasattr(self, "_remote"):
            return                       # never started
        ray = _ray()
        live = list(self._live)
        for ref in live:
            self.cancel(ref)
        if live:
            deadline = time.monotonic() + 10
            while live and time.monotonic() < deadline:
                _, live = ray.wait(live, num_returns=len(live), timeout=0.2)
            for ref in live:
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass
        self._live.clear()
        self._common.clear()
        if self._owns:
            ray.shutdown()
            self._owns = False
