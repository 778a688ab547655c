"""Disturbance: a run that got markedly less CPU than the quiet runs of its kind is not judged.

The runner records the CPU seconds a run's whole process tree got (RunResult.cpu_seconds); per
wall second that is its CPU share (about the thread count on a quiet machine, less when other
load takes cores away). The baseline's repeats are the quiet reference; their median share is
the run's kind's share.

Rule: a run that produced a value is DISTURBED when its share is below `below` (Config
`disturbed_below`, default 0.8) x the reference median. It is measured again, up to `reruns`
times (Config `disturbed_reruns`, default 2); if every try was disturbed, the last one is judged
and the trial carries a note saying so. The rule is off where below is 0, and where the reference
means nothing: fewer than two baseline runs with at least MIN_CPU CPU seconds each (a run too
short for the sampler), or a disturbed baseline (its shares differ by more than the rule allows,
then the smaller ones are dropped until they agree).

    check = LoadCheck(0.8, 2)
    check.learn(m)                                   # each baseline measurement
    m = check.measure(lambda: run_once(), say=print)  # a trial's measurement, re-run while disturbed
"""

from __future__ import annotations

import dataclasses
import statistics

MIN_CPU = 0.5          # CPU seconds: below this a run's share is sampler noise, not a measurement


class LoadCheck:
    def __init__(self, below: float = 0.8, reruns: int = 2):
        self.below = below
        self.reruns = max(0, reruns)
        self.shares: list[float] = []      # the quiet reference: CPU shares of the baseline's runs
        self.events: list[dict] = []       # since the last take_note(): the disturbed runs seen

    # ------------------------------------------------------------------ the reference
    def learn(self, m) -> None:
        """A baseline measurement: its CPU share joins the reference when it ran fine and long enough."""
        r = m.result
        if m.value is not None and r.cpu_seconds >= MIN_CPU and r.seconds > 0:
            self.shares.append(r.cpu_share)

    def reference(self) -> float | None:
        """The median share of the quiet runs, or None where the rule cannot apply."""
        shares = sorted(self.shares)
        # a baseline run disturbed itself: drop the smallest shares until the rest agree with the largest
        while len(shares) >= 2 and shares[0] < self.below * shares[-1]:
            shares.pop(0)
        return statistics.median(shares) if len(shares) >= 2 and shares[0] > 0 else None

    def record(self) -> dict:
        """For the baseline trial's extra (restored on resume)."""
        return {"cpu_shares": [round(s, 4) for s in self.shares]} if self.shares else {}

    def restore(self, trials) -> None:
        base = next((t for t in trials if t.kind == "baseline"), None)
        self.shares = list((base.extra or {}).get("cpu_shares") or []) if base else []

    # ------------------------------------------------------------------ the check
    def disturbed(self, m) -> str:
        """Why m is disturbed, or "" (a failed run, a short one, no reference, or the rule off)."""
        ref = self.reference()
        r = m.result
        if not self.below or ref is None or m.value is None or r.seconds <= 0:
            return ""
        share = r.cpu_share
        if share >= self.below * ref:
            return ""
        return (f"got {share:.2f} CPU s per wall s, below {self.below:g} x the quiet runs' {ref:.2f} "
                f"({r.cpu_seconds:.1f} CPU s in {r.seconds:.1f} s)")

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
