"""Ledger: the append-only record of trials.

`results.tsv` has upstream's five tab-separated columns (commit, <metric>, memory_gb, status,
description); the second is named after the harness' metric, so the GPT harness writes `val_bpb`
and upstream's analysis notebook reads it. memory_gb is the run's printed `peak_vram_mb` / 1024
(0.0 when the run prints none). The tool's files are never git's: a reset never loses a row. `.autoresearch/<tag>/trials.jsonl` holds the full record for the
tool (every state, all metrics, repeats, cost, parent) and is what a resume reads back.
Each row is flushed and fsynced before git moves.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from pathlib import Path

from autoresearch.trial import Trial, TrialState


def clean(text: str, limit: int = 0) -> str:
    """One line of printable text: control characters (NUL, tabs, newlines, escapes) become spaces."""
    text = " ".join(re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", str(text)).split())
    return text[:limit] if limit else text


def _fields(*values) -> str:
    """A TSV row that csv and pandas readers split into exactly these fields (a quote is quoted)."""
    buf = io.StringIO()
    csv.writer(buf, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL).writerow(values)
    return buf.getvalue()


def header(metric: str = "val_bpb") -> str:
    """The TSV's first line; the second column is named after the metric (upstream's val_bpb for the GPT harness)."""
    return _fields("commit", clean(metric) or "value", "memory_gb", "status", "description")


HEADER = header()


def tsv_row(trial: Trial, metric: str = "val_bpb") -> str:
    ran = trial.state in (TrialState.KEEP, TrialState.DISCARD) and trial.value is not None
    value = trial.value if ran else 0.0
    mem_mb = trial.metrics.get("peak_vram_mb", 0.0) if ran else 0.0
    mem = (mem_mb if isinstance(mem_mb, (int, float)) else 0.0) / 1024
    desc = trial.description
    if trial.state not in (TrialState.KEEP, TrialState.DISCARD, TrialState.CRASH) or "pruned" in trial.extra:
        desc = f"[{'pruned' if 'pruned' in trial.extra else trial.state.value}] {desc}"
    return _fields((trial.commit or "0000000")[:7], f"{value:.6f}", f"{mem:.1f}", trial.state.tsv_status, clean(desc))


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


class Ledger:
    def __init__(self, root: str | Path, tag: str, metric: str = "val_bpb"):
        self.root = Path(root)
        self.tag = tag
        self.metric = metric
        self.dir = self.root / ".autoresearch" / tag
        self.jsonl = self.dir / "trials.jsonl"
        self.tsv = self.root / "results.tsv"
        self.meta_path = self.dir / "meta.json"

    # ------------------------------------------------------------------ reading
    def load(self) -> list[Trial]:
        """Every recorded trial, in order. A torn last line (killed mid-write) is dropped."""
        if not self.jsonl.exists():
            return []
        trials = []
        for line in self.jsonl.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                trials.append(Trial.from_dict(json.loads(line)))
            except (json.JSONDecodeError, KeyError, ValueError, TypeError):
                continue
        return trials

    def digest(self) -> str:
        """sha256 of the ledger's files by content: any rewrite shows, whatever its size and mtime."""
        h = hashlib.sha256()
        for p in (self.jsonl, self.tsv, self.meta_path):
            h.update(p.read_bytes() if p.exists() else b"<missing>")
            h.update(b"\0")
        return h.hexdigest()

    def meta(self) -> dict:
        return json.loads(self.meta_path.read_text()) if self.meta_path.exists() else {}

    def write_meta(self, meta: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, self.meta_path)

    # ------------------------------------------------------------------ writing
    def open(self) -> None:
        """Create the files, repair a torn last line, and make results.tsv this tag's view."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.jsonl.exists():
            raw = self.jsonl.read_bytes()
            if raw and not raw.endswith(b"\n"):
                # killed mid-write: the partial row never counted; cut it so appends stay valid
                keep = raw[: raw.rfind(b"\n") + 1]
                with open(self.jsonl, "wb") as f:
                    f.write(keep)
                    f.flush()
                    os.fsync(f.fileno())
        trials = self.load()
        expected = header(self.metric) + "".join(tsv_row(t, self.metric) for t in trials)
        current = self.tsv.read_text(encoding="utf-8") if self.tsv.exists() else None
        if current != expected:
            if current and not expected.startswith(current):
                # results.tsv belongs to another tag or was edited by hand: keep a copy, never lose it
                backup = self.root / ".autoresearch" / "results.tsv.bak"
                with open(backup, "a", encoding="utf-8") as f:
                    f.write(current)
            tmp = self.tsv.with_suffix(".tsv.tmp")
            tmp.write_text(expected, encoding="utf-8")
            os.replace(tmp, self.tsv)

    def append(self, trial: Trial) -> None:
        """Record one trial: jsonl first (the tool's truth), then the people's TSV."""
        _append(self.jsonl, json.dumps(trial.to_dict(), sort_keys=True) + "\n")
        _append(self.tsv, tsv_row(trial, self.metric))
