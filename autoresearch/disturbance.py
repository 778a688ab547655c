"""Disturbance: a run that other load took cores from is not judged; it is measured again.

The runner records, over a run's whole process tree, the CPU seconds it got (RunResult.cpu_seconds)
and the seconds its threads were ready to run but waited for a core (RunResult.wait_seconds, from
the kernel's per-thread schedstat). The baseline's repeats are the reference of the run's kind.
Two signs, either one enough:
- its CPU share (CPU s per wall s) below `below` (Config `disturbed_below`, default 0.8) x the
  reference median: cores were taken and its threads sleep meanwhile;
- its wait per CPU second above WAIT_FACTOR x the reference median and WAIT_FLOOR more: other
  processes were running on its cores. This one also catches multi-threaded runs whose threads
  spin while they wait (their CPU share does not drop: measured, 0 of 3 hogged runs caught by
  the share alone).

A disturbed run is measured again, up to `reruns` times (Config `disturbed_reruns`, default 2); if
every try was disturbed, the last one is judged and the trial carries a note saying so. The rule
is off where below is 0, and a sign is off where its reference means nothing: fewer than two
baseline runs with at least MIN_CPU CPU seconds each (a run too short for the sampler), or a
disturbed baseline (its runs disagree by more than the rule allows; the outliers are dropped
until they agree).

    check = LoadCheck(0.8, 2)
    check.learn(m)                                   # each baseline measurement
    m = check.measure(lambda: run_once(), say=print)  # a trial's measurement, re-run while disturbed
"""

from __future__ import annotations

import dataclasses
import glob
import os
import statistics

MIN_CPU = 0.5          # CPU seconds: below this a run's share is sampler noise, not a measurement
WAIT_FACTOR = 2.0      # a run waiting for cores this many times as long (per CPU s) as the reference...
WAIT_FLOOR = 0.5       # ...and this many seconds per CPU s more is disturbed


class LoadCheck:
    def __init__(self, below: float = 0.8, reruns: int = 2):
        self.below = below
        self.reruns = max(0, reruns)
        self.shares: list[float] = []      # the quiet reference: CPU shares of the baseline's runs
        self.waits: list[float] = []       # ... and their seconds waited for a core per CPU second
        self.events: list[dict] = []       # since the last take_note(): the disturbed runs seen

    # ------------------------------------------------------------------ the reference
    def learn(self, m) -> None:
        """A baseline measurement: it joins the reference when it ran fine and long enough."""
        r = m.result
        if m.value is not None and r.cpu_seconds >= MIN_CPU and r.seconds > 0:
            self.shares.append(r.cpu_share)
            self.waits.append(r.wait_ratio)

    def reference(self) -> float | None:
        """The median share of the quiet runs, or None where the rule cannot apply."""
        shares = sorted(self.shares)
        # a baseline run disturbed itself: drop the smallest shares until the rest agree with the largest
        while len(shares) >= 2 and shares[0] < self.below * shares[-1]:
            shares.pop(0)
        return statistics.median(shares) if len(shares) >= 2 and shares[0] > 0 else None

    def wait_reference(self) -> float | None:
        """The median wait per CPU second of the quiet runs, or None."""
        waits = sorted(self.waits)
        while len(waits) >= 2 and waits[-1] > WAIT_FACTOR * waits[0] + WAIT_FLOOR:
            waits.pop()
        return statistics.median(waits) if len(waits) >= 2 else None

    def record(self) -> dict:
        """For the baseline trial's extra (restored on resume)."""
        if not self.shares:
            return {}
        return {"cpu_shares": [round(s, 4) for s in self.shares], "wait_ratios": [round(w, 4) for w in self.waits]}

    def restore(self, trials) -> None:
        base = next((t for t in trials if t.kind == "baseline"), None)
        self.shares = list((base.extra or {}).get("cpu_shares") or []) if base else []
        self.waits = list((base.extra or {}).get("wait_ratios") or []) if base else []

    # ------------------------------------------------------------------ the check
    def disturbed(self, m) -> str:
        """Why m is disturbed, or "" (a failed run, a short one, no reference, or the rule off)."""
        r = m.result
        if not self.below or m.value is None or r.seconds <= 0:
            return ""
        ref, wait_ref = self.reference(), self.wait_reference()
        if ref is not None and r.cpu_share < self.below * ref:
            return (f"got {r.cpu_share:.2f} CPU s per wall s, below {self.below:g} x the quiet runs' {ref:.2f} "
                    f"({r.cpu_seconds:.1f} CPU s in {r.seconds:.1f} s)")
        if wait_ref is not None and r.cpu_seconds >= MIN_CPU and r.wait_ratio > WAIT_FACTOR * wait_ref + WAIT_FLOOR:
            return (f"waited {r.wait_ratio:.2f} s for a core per CPU s, the quiet runs {wait_ref:.2f} "
                    f"({r.wait_seconds:.1f} s waited, {r.cpu_seconds:.1f} CPU s in {r.seconds:.1f} s)")
        return ""

    def measure(self, run, say=None):
        """run() -> Measurement, again while disturbed (at most `reruns` more times). The last one is
        returned; where it is still disturbed, its `disturbed` field says so and it is judged anyway."""
        m = run()
        for attempt in range(self.reruns + 1):
            why = self.disturbed(m)
            if not why:
                return m
            self.events.append({"why": why, "cpu_seconds": m.result.cpu_seconds, "seconds": m.result.seconds})
            if attempt == self.reruns:
                break
            if say:
                say(f"  run disturbed ({why}): measuring again")
            m = run()
        note = f"disturbed in {self.reruns + 1} runs, judged anyway: {why}"
        if say:
            say(f"  {note}")
        return dataclasses.replace(m, disturbed=note)

    def take_note(self) -> dict:
        """For the trial's extra: how many of its runs were disturbed and re-run (then forgets them)."""
        events, self.events = self.events, []
        return {"disturbed_runs": len(events), "disturbed": events[-1]["why"]} if events else {}


class CpuMeter:
    """CPU seconds of a process tree: each process's own user + system time at its last sample (a process
    that ends between samples loses at most one interval), and at the end the leader's rusage from wait4,
    which holds the leader and every descendant it (or they) waited for: the larger of the two counts.
    Also the seconds its threads spent runnable but waiting for a core (Linux: the second field of
    /proc/<pid>/task/<tid>/schedstat), the sign of other load that CPU seconds miss where threads spin."""

    def __init__(self, pid: int, proc_root: str = "/proc"):
        self.pid, self.proc_root = pid, proc_root
        self.seen: dict[tuple[int, float], float] = {}    # (pid, create_time) -> cpu seconds
        self.waits: dict[tuple[int, float], float] = {}   # (pid, create_time) -> seconds waited for a core
        self.reaped = 0.0
        self.offset = self.wait_offset = 0.0   # what a spare interpreter (warm.py) spent before this run
        self.sample()
        self.offset, self.wait_offset = sum(self.seen.values()), sum(self.waits.values())

    def sample(self) -> None:
        try:
            import psutil
            leader = psutil.Process(self.pid)
            procs = [leader, *leader.children(recursive=True)]
        except Exception:
            return
        for p in procs:
            try:
                t, key = p.cpu_times(), (p.pid, p.create_time())
                self.seen[key] = t.user + t.system
                self.waits[key] = max(self.waits.get(key, 0.0), waited(p.pid, self.proc_root))
            except Exception:
                pass

    @property
    def seconds(self) -> float:
        return max(0.0, max(sum(self.seen.values()), self.reaped) - self.offset)

    @property
    def wait(self) -> float:
        return max(0.0, sum(self.waits.values()) - self.wait_offset)


def waited(pid: int, proc_root: str = "/proc") -> float:
    """Seconds the live threads of pid spent ready to run but waiting for a core (0 where unknown)."""
    total = 0
    for path in glob.glob(os.path.join(proc_root, str(pid), "task", "*", "schedstat")):
        try:
            with open(path) as f:
                total += int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def reap(proc, meter: CpuMeter):
    """proc.poll(), but through wait4 where we can, for the leader's rusage (CPU of the whole waited tree)."""
    if proc.returncode is not None or not hasattr(os, "wait4"):
        return proc.poll()
    try:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    except ChildProcessError:
        return proc.poll()
    if pid == 0:
        return None
    meter.reaped = usage.ru_utime + usage.ru_stime
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode
