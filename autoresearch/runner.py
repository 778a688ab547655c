"""Runner: runs a harness command under an external wall-clock limit and returns a RunResult.

The command gets its own process group and a scrubbed environment (no API keys or tokens).
Output goes to a log file through a bounded writer, so a flood of output cannot fill memory
or disk; the summary block (`---` then `key: value` lines) is parsed from the end of the log.
Past the timeout, or above the memory limit, the whole process group is killed. A crash,
a hang, an out-of-memory kill: all come back as a RunResult, never as an exception.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch import warm
from autoresearch.processes import dies_with_us, kill_group
from autoresearch.disturbance import CpuMeter, GpuMeter, busy, own_cpu, reap

# Never handed to the training process: anything that looks like a credential.
_SECRET = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION)", re.I)
# What a training process legitimately needs from the environment.
_KEEP = re.compile(r"^(PATH|HOME|USER|LOGNAME|LANG|LC_.*|TZ|TMPDIR|TEMP|TMP|SHELL|TERM|PYTHON.*|VIRTUAL_ENV|"
                   r"AUTORESEARCH_.*|CUDA_.*|NVIDIA_.*|HIP_.*|ROCR_.*|PYTORCH_.*|TORCH.*|TRITON_.*|OMP_.*|MKL_.*|"
                   r"OPENBLAS_.*|KMP_.*|LD_LIBRARY_PATH|XDG_CACHE_HOME|HF_HOME|CC|CXX|NCCL_.*|MPS_.*|RAY_.*)$")

_LOSS = re.compile(r"loss:\s*([-+0-9.eE]+|nan|inf)")
_REMAINING = re.compile(r"remaining:\s*([0-9.]+)")
_STEP = re.compile(r"step\s+(\d+)")
_FRACTION = re.compile(r"^progress:\s*([0-9.]+)")     # a curve point (autoresearch/pruning.py)


def scrub_env(environ: dict | None = None, extra: dict | None = None) -> dict:
    """The environment a training process sees: needed variables only, never a credential."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if _KEEP.match(k) and not _SECRET.search(k)}
    env.update(extra or {})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def command(text: str, isolated: bool = False, **fmt) -> list[str]:
    """Split a run command; a leading `python` means the interpreter the tool runs under.
    isolated: that interpreter runs with -I (no script folder, cwd or PYTHON* variables on its path),
    for the trusted commands (the scorer) that must import nothing a run could have left behind."""
    argv = [part.format(**fmt) if fmt else part for part in shlex.split(text)]
    if argv and argv[0] in ("python", "python3"):
        argv[0:1] = [sys.executable, "-I"] if isolated else [sys.executable]
    return argv


def tree_bytes(path: Path) -> int:
    """Bytes in the files under path (what a run wrote into its scratch folder)."""
    def size(file: str) -> int:
        try:
            return os.lstat(file).st_size
        except OSError:
            return 0
    return sum(size(os.path.join(folder, name)) for folder, _, names in os.walk(path) for name in names)


def parse_summary(text: str) -> dict[str, float]:
    """The last `---` block: `key: value` lines, numbers parsed (non-numbers kept as text)."""
    lines = text.splitlines()
    for start in range(len(lines) - 1, -1, -1):
        if lines[start].strip() == "---":
            break
    else:
        return {}
    out = {}
    for line in lines[start + 1:]:
        m = re.match(r"^\s*([A-Za-z_][\w.]*)\s*:\s*(\S.*?)\s*$", line)
        if not m:
            if out:
                break          # the block ends at the first line that is not key: value
            continue
        key, value = m.groups()
        try:
            out[key] = float(value.replace(",", ""))
        except ValueError:
            out[key] = value
    return out


@dataclass(frozen=True)
class RunResult:
    returncode: int | None
    timed_out: bool
    seconds: float
    log_path: str
    summary: dict = field(default_factory=dict)
    tail: str = ""                  # the last few KB of output, for crash reports and agents
    peak_rss_mb: float = 0.0
    killed: str = ""                # "timeout", "memory", "writes", "signal" or ""
    log_bytes: int = 0              # total bytes the command wrote (the log may hold fewer)
    cpu_seconds: float = 0.0        # user + system CPU seconds of the run's whole process tree
    wait_seconds: float = 0.0       # seconds its threads were ready to run but waited for a core
    gpu_util: float | None = None   # mean utilisation (%) of its NVIDIA GPUs while it trained; None: not measured
    gpu_shared: float = 0.0         # fraction of the run another process held a context on its GPU
    window_seconds: float = 0.0     # wall seconds from its first progress line to its last (0: fewer than two)
    window_cpu: float = 0.0         # CPU seconds of its tree in that window
    window_wait: float = 0.0        # seconds its threads waited for a core in that window
    others: float | None = None     # CPU s other processes used on its cores over the run (None: not measured)
    window_others: float | None = None   # ... in the window

    @property
    def judged(self) -> tuple[float, float, float, float | None]:
        """(CPU s, s waited for a core, wall s, other processes' CPU s on its cores) its share is judged on
        (disturbance.py): while it trained, from its
        first progress line to its last, where it printed them over WINDOW_MIN s or more; else the whole run. The
        start-up is left out: a trial whose change misses the compile cache compiles for 15 s at about one core,
        and a pruned run of it (stopped at 20% of a 20 s budget) then got 1.19 CPU s per wall s against the
        quiet runs' 1.69, and was measured again, the whole budget, as disturbed (a cpu study, 2026-11-29).
        Load then costs the run nothing: the harness's clock leaves its first steps out."""
        if self.window_seconds >= WINDOW_MIN:
            return self.window_cpu, self.window_wait, self.window_seconds, self.window_others
        return self.cpu_seconds, self.wait_seconds, self.seconds, self.others

    @property
    def cpu_share(self) -> float:
        """CPU seconds per wall second while it trained (0 where nothing was measured); see disturbance.py."""
        cpu, _, wall, _ = self.judged
        return cpu / wall if wall > 0 else 0.0

    @property
    def wait_ratio(self) -> float:
        """Seconds waited for a core per CPU second (about 0 on a quiet machine); see disturbance.py."""
        cpu, wait, _, _ = self.judged
        return wait / cpu if cpu > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.killed

    def metric(self, name: str) -> float | None:
        v = self.summary.get(name)
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


@dataclass
class Progress:
    """What the live line shows, updated from the run's output as it arrives."""
    step: int | None = None
    loss: float | None = None
    remaining: float | None = None
    fraction: float | None = None   # of the time budget, on a `progress: F loss: L` line only
    points: int = 0                 # `progress:` lines so far
    stop: str = ""                  # why on_progress asked to stop the run (killed = "pruned")


class _Drain(threading.Thread):
    """Copies the child's output to the log, at most max_bytes of it, and keeps a tail."""

    def __init__(self, stream, log, max_bytes: int, progress: Progress, on_progress):
        super().__init__(daemon=True)
        self.stream, self.log, self.max_bytes = stream, log, max_bytes
        self.progress, self.on_progress = progress, on_progress
        self.written = 0
        self.total = 0
        # the last bytes, bounded by bytes only: an unbuffered child writes a traceback's carets a
        # character a write, so a bound on chunks kept only its last line (the reason lost its code line)
        self.tail = bytearray()
        self.tail_bytes = 256 * 1024

    def run(self):
        partial = b""
        while True:
            chunk = self.stream.read1(65536) if hasattr(self.stream, "read1") else self.stream.read(65536)
            if not chunk:
                break
            self.total += len(chunk)
            if self.written < self.max_bytes:
                part = chunk[: self.max_bytes - self.written]
                self.log.write(part)
                self.written += len(part)
            self.tail += chunk
            if len(self.tail) > 2 * self.tail_bytes:
                del self.tail[:-self.tail_bytes]
            # every curve point (progress: lines), then the last complete line of this chunk: cheap on a flood
            whole = partial + chunk
            for line in re.findall(rb"(?m)^progress:[^\r\n]*(?=[\r\n])", whole) if b"progress:" in whole else ():
                self._parse(line.decode(errors="replace"))
            text = whole[-4096:]
            partial = text.rsplit(b"\n", 1)[-1] if b"\n" in text else text[-1024:]
            lines = re.split(rb"[\r\n]", text)
            for line in reversed(lines[:-1] or lines):
                if b"loss:" in line:
                    self._parse(line.decode(errors="replace"))
                    break

    def _parse(self, line: str):
        m = _LOSS.search(line)
        if m:
            try:
                self.progress.loss = float(m.group(1))
            except ValueError:
                pass
        m = _REMAINING.search(line)
        if m:
            self.progress.remaining = float(m.group(1))
        m = _STEP.search(line)
        if m:
            self.progress.step = int(m.group(1))
        m = _FRACTION.search(line)
        self.progress.fraction = float(m.group(1)) if m else None
        self.progress.points += 1 if m else 0
        if self.on_progress:        # it may answer why the run must stop (pruning.Watch)
            self.progress.stop = self.on_progress(self.progress) or self.progress.stop

    def tail_text(self) -> str:
        return bytes(self.tail[-self.tail_bytes:]).decode(errors="replace")


def _group_rss_mb(pid: int) -> float:
    try:
        import psutil
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total / 2**20
    except Exception:
        return 0.0


def thread_env(environ: dict | None = None) -> dict:
    """OMP/MKL thread counts for a run: the cores this process may use (os.sched_getaffinity), so torch
    does not start a thread per core of the machine when the tool is pinned to fewer. A value the user
    set wins."""
    environ = os.environ if environ is None else environ
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return {k: environ.get(k) or str(max(1, n)) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def default_memory_limit_mb(share: int = 1) -> float:
    """The memory limit of one run when none is set: 80% of this machine's memory, split over
    `share` runs at once (0 when psutil cannot tell)."""
    try:
        import psutil
        return 0.8 * psutil.virtual_memory().total / 2**20 / max(1, int(share))
    except Exception:
        return 0.0


class _interrupts_deferred:
    """SIGINT and SIGTERM that arrive in the block are held until deliver(), then acted on as their
    handlers would (main thread only: Python runs signal handlers there; elsewhere a no-op)."""

    def __enter__(self):
        self.got, self.old = [], {}
        if threading.current_thread() is threading.main_thread():
            self.old = {s: signal.signal(s, lambda n, f: self.got.append(n)) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)

    def deliver(self) -> None:
        handler = self.old.get(self.got[0]) if self.got else None
        if callable(handler):
            handler(self.got[0], None)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(self.got[0])


WINDOW_MIN = 0.25    # seconds: a shorter training window is judged by the whole run's share (RunResult.judged); the
                     # marks read the CPU when they are taken, so a pruned run's tenth of a budget is long enough


def run(argv: list[str], cwd: str | Path, timeout: float, log_path: str | Path,
        env: dict | None = None, memory_limit_mb: float | None = None,
        max_log_bytes: int = 20 * 2**20, on_progress=None, on_start=None, preload: tuple[str, ...] = (),
        spares: int = 0, watch: Path | None = None, max_write_bytes: int = 0) -> RunResult:
    """Run argv in cwd and wait, at most `timeout` wall seconds. Never raises for the child's faults.
    preload: modules a `python FILE.py` command imports anyway; it then runs in a spare interpreter
    that has imported them already (autoresearch/warm.py), when one is ready. spares: how many such
    interpreters to have ready for the commands that follow, started while this one runs.
    watch: a folder the command writes to; past max_write_bytes in it the command is killed."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    progress = Progress()
    env = env if env is not None else scrub_env()
    popen_kw = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                    preexec_fn=dies_with_us())
    start = time.monotonic()
    with open(log_path, "wb") as log:
        try:
            starting = _interrupts_deferred()    # a Ctrl-C while it starts would leave a child no one holds
            with starting:
                proc = warm.start(argv, str(cwd), env, tuple(preload), popen_kw, spares) or subprocess.Popen(
                    argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL, **popen_kw)
        except OSError as e:
            log.write(f"could not start {argv!r}: {e}\n".encode())
            return RunResult(returncode=127, timed_out=False, seconds=0.0, log_path=str(log_path),
                             tail=f"could not start {argv!r}: {e}")
        killed, peak, last_mem, last_du, last_cpu = "", 0.0, 0.0, 0.0, 0.0
        drain = _Drain(proc.stdout, log, max_log_bytes, progress, on_progress)
        try:
            starting.deliver()
            if on_start is not None:
                on_start(proc.pid)          # the process group id too: the study records it for resume
            drain.start()
            meter, gpu = CpuMeter(proc.pid), GpuMeter.open(env)
            points, marks = 0, []         # (wall, CPU s, wait s, GPU samples, busy, the tool's CPU) at its first and last progress line
            busy0, own0 = meter.busy, meter.own
            while reap(proc, meter) is None:
                now = time.monotonic()
                if now - last_cpu >= 0.2 or progress.points != points:      # (a progress line: sampled now)
                    last_cpu = now
                    meter.sample()
                    if gpu is not None:
                        gpu.sample(meter.pids)
                if progress.points != points:
                    points = progress.points
                    marks[1:] = [(now, meter.seconds, meter.wait, len(gpu.utils) if gpu else 0, meter.busy, meter.own)]
                if now - start > timeout or progress.stop:
                    killed = "pruned" if progress.stop else "timeout"
                    break
                if now - last_mem >= 0.5:
                    last_mem = now
                    rss = _group_rss_mb(proc.pid)
                    peak = max(peak, rss)
                    if memory_limit_mb and rss > memory_limit_mb:
                        killed = "memory"
                        break
                if watch is not None and max_write_bytes and now - last_du >= 1.0:
                    last_du = now
                    if tree_bytes(watch) > max_write_bytes:
                        killed = "writes"
                        break
                time.sleep(0.05)
        except BaseException:
            kill_group(proc.pid, proc=proc)   # Ctrl-C or a kill of the tool: never leave a trainer behind
            raise
        finally:
            # also reaps anything the command left behind in its group
            kill_group(proc.pid, grace=3.0 if killed else 0.5, proc=proc)
        proc.wait()
        drain.join(timeout=10)
        seconds = time.monotonic() - start
        note = ""
        if drain.total > drain.written:
            note = f"\n[autoresearch: {drain.total - drain.written} bytes of output not kept in this log; tail follows]\n"
            log.write(note.encode() + drain.tail_text()[-65536:].encode())
        if killed:
            what = {"timeout": f"killed after {timeout:.0f} s (budget + allowance)",
                    "memory": f"killed: memory {peak:.0f} MB above the limit of {memory_limit_mb or 0:.0f} MB",
                    "writes": f"killed: wrote more than {max_write_bytes / 2**20:.0f} MB", "pruned": progress.stop}[killed]
            log.write(f"\n[autoresearch: {what}]\n".encode())
    tail = drain.tail_text()
    if killed:
        tail += f"\n[autoresearch: {what}]"
    code = proc.returncode
    if code is not None and os.path.basename(argv[0]) == "bwrap" and 128 < code <= 128 + 64:
        code = 128 - code       # bubblewrap reports its command's death by signal N as 128 + N
    if not killed and code is not None and code < 0:
        killed = "signal"       # e.g. the kernel's OOM killer
    (t0, cpu0, wait0, g0, b0, o0), (t1, cpu1, wait1, g1, b1, o1) = (
        marks if len(marks) == 2 else [(0.0, 0.0, 0.0, 0, None, 0.0)] * 2)
    busy1, own1 = busy(), own_cpu()      # (the tree is gone: only the cores' busy time is left to read)
    # the others: what the cores did beyond the run and the tool's work for it (draining its output, sampling it)
    others = None if busy0 is None or busy1 is None else round(max(0.0, busy1 - busy0 - meter.seconds - (own1 - own0)), 3)
    window_others = None if b0 is None or b1 is None else round(max(0.0, b1 - b0 - (cpu1 - cpu0) - (o1 - o0)), 3)
    return RunResult(returncode=code, timed_out=killed == "timeout", seconds=seconds, log_path=str(log_path),
                     summary=parse_summary(tail), tail=tail[-8192:], peak_rss_mb=peak, killed=killed,
                     log_bytes=drain.total, cpu_seconds=round(meter.seconds, 3),
                     wait_seconds=round(meter.wait, 3), gpu_util=gpu.percent_of(g0, g1) if gpu else None,
                     gpu_shared=round(gpu.shared, 3) if gpu else 0.0, window_seconds=round(t1 - t0, 3),
                     window_cpu=round(cpu1 - cpu0, 3), window_wait=round(wait1 - wait0, 3), others=others,
                     window_others=window_others)
