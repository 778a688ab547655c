"""Display: what a person watching a study sees.

On a terminal, one live line (trial, seconds left, step, current loss, best so far, and a noise
warning when there is one) redrawn in place; elsewhere (CI, a log file) plain lines, one per
event. `Quiet` shows nothing. Runs report progress from their own threads: writes are locked.
"""

from __future__ import annotations

import sys
import threading
import time


class Quiet:
    """The do-nothing display (tests, the Python API by default)."""

    def message(self, text: str) -> None: ...
    def trial_started(self, number: int, description: str) -> None: ...
    def progress(self, progress) -> None: ...
    def trial_done(self, trial, best) -> None: ...
    def warn(self, text: str) -> None: ...


class Console(Quiet):
    def __init__(self, stream=None, live: bool | None = None, metric: str = "val_bpb"):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.metric = metric
        self.best_value = None
        self.noisy = ""                  # a short note for the live line while the noise is too high
        self._label = ""
        self._last = 0.0
        self._lock = threading.Lock()

    def _write(self, text: str) -> None:
        with self._lock:
            if self.live:
                self.stream.write("\r\033[K")
            self.stream.write(text)
            self.stream.flush()

    def message(self, text: str) -> None:
        self._write(text + "\n")

    def warn(self, text: str) -> None:
        self.noisy = "NOISY: " + text.split(":", 1)[0] if text else ""
        self.message(f"warning: {text}")

    def trial_started(self, number: int, description: str) -> None:
        self._label = "baseline" if description == "baseline" else f"trial {number}"
        self.message(f"[{self._label}] {description}")

    def progress(self, progress) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        parts = [self._label]
        if progress.remaining is not None:
            parts.append(f"{progress.remaining:.0f}s left")
        if progress.step is not None:
            parts.append(f"step {progress.step}")
        if progress.loss is not None:
            parts.append(f"loss {progress.loss:.4f}")
        if self.best_value is not None:
            parts.append(f"best {self.metric} {self.best_value:.6f}")
        if self.noisy:
            parts.append(self.noisy)
        with self._lock:
            self.stream.write("\r\033[K" + " | ".join(parts))
            self.stream.flush()

    def trial_done(self, trial, best) -> None:
        if best is not None and best.value is not None:
            self.best_value = best.value
        value = f"{trial.value:.6f}" if trial.value is not None else "-"
        n = f" x{len(trial.values)}" if len(trial.values) > 1 else ""
        why = f" ({trial.reason.splitlines()[0][:120]})" if trial.reason and trial.state.value != "keep" else ""
        label = "baseline" if trial.kind == "baseline" else f"trial {trial.number}"
        self.message(f"[{label}] {trial.state.value.upper()} {self.metric}={value}{n} {trial.description}{why}")
