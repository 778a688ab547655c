"""Finalize: a finished study as a clean result.

    autoresearch finalize -C runs/demo [--repeats 3]

Makes the branch `autoresearch/<tag>-final`: the baseline, then one commit per kept change in
the order kept (message: the description, the gain, the noise, the runs), each with exactly the
code that was measured (git plumbing only: the work tree and the study branch are not touched).
Then the ablation: the final code, and the final code with each kept change reverted alone, each
run `repeats` times with the study's own measurement (measurement.measure) in a worktree; a
change's contribution is how much worse the final code is without it. A change that no longer
helps (its contribution is not above the noise) is flagged. The table is kept in
`.autoresearch/<tag>/final.json` and goes into report.md and report.html.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import time
from pathlib import Path

from autoresearch.errors import AutoresearchError
from autoresearch.trial import Trial, TrialState
from autoresearch.workspace import git_argv, git_env

SIGMA = 2.0      # a contribution must exceed this many standard errors to count as "helps"


def _git(root: Path, *args: str, input: str | None = None, env: dict | None = None) -> str:
    r = subprocess.run(git_argv(*args), cwd=root, capture_output=True, text=True, input=input,
                       env={**git_env(), **(env or {})})
    if r.returncode != 0:
        raise AutoresearchError(f"git {' '.join(args[:2])} failed in {root}: {r.stderr.strip()[:300]}")
    return r.stdout


def _identity(root: Path) -> dict:
    env = {}
    for key, var, default in (("user.name", "NAME", "autoresearch"), ("user.email", "EMAIL", "autoresearch@localhost")):
        r = subprocess.run(git_argv("config", key), cwd=root, capture_output=True, text=True, env=git_env())
        value = r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else default
        env[f"GIT_AUTHOR_{var}"] = env[f"GIT_COMMITTER_{var}"] = value
    return env


def gain(t: Trial, before: Trial, direction: str) -> float | None:
    """How much better t is than the best before it (positive: better, in either direction)."""
    if t.value is None or before.value is None:
        return None
    return (before.value - t.value) if direction == "minimize" else (t.value - before.value)


def message(t: Trial, before: Trial, metric: str, noise: float, direction: str = "minimize") -> str:
    g = gain(t, before, direction)
    lines = [t.description, "",
             f"{metric} {before.value:.6f} -> {t.value:.6f} (gain {g:+.6f}) against trial {before.number}"
             if g is not None else f"{metric} {t.value}",
             f"noise sd {noise:.6f}; runs {len(t.values)} ({', '.join(f'{v:.6f}' for v in t.values)})",
             f"trial {t.number} of tag {t.tag}, study commit {t.commit[:12]}"]
    if t.reason:
        lines.append(f"judge: {t.reason.splitlines()[0]}")
    return "\n".join(lines) + "\n"


def build_branch(root: Path, tag: str, trials: list[Trial], metric: str, direction: str = "minimize") -> tuple[str, list[tuple[Trial, Trial, str]]]:
    """The -final branch; returns its name and (kept trial, the best before it, new commit) in order."""
    from autoresearch.views import noise_sd
    baseline = next((t for t in trials if t.kind == "baseline" and t.state == TrialState.KEEP), None)
    if baseline is None:
        raise AutoresearchError(f"tag {tag} has no measured baseline: run `autoresearch run` first")
    noise = noise_sd(trials)
    env = _identity(root)
    head, before, out = baseline.commit, baseline, []
    for t in trials:
        if t.state != TrialState.KEEP or t.kind == "baseline":
            continue
        tree = _git(root, "rev-parse", f"{t.commit}^{{tree}}").strip()
        head = _git(root, "commit-tree", tree, "-p", head, "-F", "-", input=message(t, before, metric, noise, direction),
                    env=env).strip()
        out.append((t, before, head))
        before = t
    branch = f"autoresearch/{tag}-final"
    _git(root, "update-ref", f"refs/heads/{branch}", head)
    return branch, out


class Finalizer:
    def __init__(self, root, tag: str | None = None, repeats: int = 3, progress=None):
        from autoresearch.config import Config
        from autoresearch.harness import Harness
        from autoresearch.ledger import Ledger
        from autoresearch.workspace import Workspace
        self.ws = Workspace(root, tag=tag)
        self.harness = Harness.load(self.ws.root)
        self.config = Config.load(self.harness.section("study"))
        self.ledger = Ledger(self.ws.root, self.ws.tag, self.harness.metric)
        self.repeats = repeats
        self.progress = progress or (lambda line: None)

    def run(self) -> dict:
        from autoresearch import report
        from autoresearch.views import noise_sd
        ws, h = self.ws, self.harness
        if report.running(self.ledger.dir):
            raise AutoresearchError(f"a study is running on tag {ws.tag}: let it stop (Ctrl-C) before finalize")
        trials = self.ledger.load()
        branch, kept = build_branch(ws.root, ws.tag, trials, h.metric, h.direction)
        self.progress(f"branch {branch}: {len(kept)} kept change(s) on top of the baseline")
        record = {"branch": branch, "tag": ws.tag, "metric": h.metric, "direction": h.direction,
                  "repeats": self.repeats, "written": time.time(), "final_mean": None, "final_values": [],
                  "noise_sd": noise_sd(trials), "rows": []}
        if kept and self.repeats > 0:
            self._ablate(kept, record, trials)
        self.ledger.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.ledger.dir / "final.json.tmp"
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, self.ledger.dir / "final.json")
        report.write(ws, h, trials)
        return record

    # ------------------------------------------------------------------ the ablation
    def _ablate(self, kept, record, trials) -> None:
        ws, h = self.ws, self.harness
        final_commit = kept[-1][2]
        sums = self.ledger.meta().get("readonly") or ws.checksums(h.readonly)
        final_values = self._measure_code(final_commit, None, "final", sums)
        if not final_values:
            raise AutoresearchError(f"the final code failed to run (see .autoresearch/logs/{ws.tag}-final.*.log)")
        record["final_values"] = final_values
        record["final_mean"] = statistics.fmean(final_values)
        groups = [t.values for t in trials if len(t.values) >= 2] + [final_values]
        sign = 1.0 if h.direction == "minimize" else -1.0
        for i, (t, before, _) in enumerate(kept, 1):
            self.progress(f"ablation {i}/{len(kept)}: the final code without trial {t.number} ({t.description})")
            row = {"trial": t.number, "description": t.description, "commit": t.commit[:12],
                   "gain": gain(t, before, h.direction),
                   "without_values": [], "without_mean": None, "contribution": None, "se": None}
            patch = _git(ws.root, "diff", "--binary", before.commit, t.commit, "--")
            values = self._measure_code(final_commit, patch, f"final-{t.number}", sums)
            if values is None:
                row.update(verdict="cannot be reverted alone (later changes build on it)", flag=False)
            elif not values:
                row.update(verdict="the final code without it fails to run", flag=False)
            else:
                groups.append(values)
                row["without_values"] = values
                row["without_mean"] = statistics.fmean(values)
                row["contribution"] = sign * (row["without_mean"] - record["final_mean"])
            record["rows"].append(row)
        sd = _pooled(groups)
        record["noise_sd"] = sd
        for row in record["rows"]:
            if row["contribution"] is None:
                continue
            se = sd * math.sqrt(1 / len(row["without_values"]) + 1 / len(final_values))
            row["se"] = se
            if row["contribution"] > SIGMA * se and row["contribution"] > 0:
                row.update(verdict="helps", flag=False)
            elif row["contribution"] <= 0:
                row.update(verdict="no longer helps", flag=True)
            else:
                row.update(verdict=f"no longer helps beyond the noise (< {SIGMA:g} SE)", flag=True)

    def _measure_code(self, commit: str, revert: str | None, name: str, sums: dict) -> list[float] | None:
        """Run commit (with one change reverted) `repeats` times in a worktree. None: the revert
        does not apply; []: the code does not run."""
        from autoresearch import sandbox
        from autoresearch import runner
        from autoresearch.measurement import compile_cache, hard_limit, measure
        ws = self.ws
        meta = self.ledger.meta()
        limits = dict(sandbox=sandbox.detect(self.config.sandbox), pins=dict(meta.get("pins") or {}),
                      timeout=hard_limit(self.harness, meta.get("overhead")))   # the study's own walls and limits
        tree = ws.root / ".autoresearch" / "worktrees" / "finalize"
        ws.remove_worktree(tree)
        ws.add_worktree(tree, commit)
        try:
            if revert:
                r = subprocess.run(git_argv("apply", "-R", "--3way", "-"), cwd=tree, input=revert, text=True,
                                   capture_output=True, env=git_env())
                if r.returncode != 0:
                    return None
            values = []
            for r in range(self.repeats):
                m = measure(tree, self.harness, sums, ws.root / ".autoresearch" / "logs" / f"{ws.tag}-{name}.{r}.log",
                            ws.root / ".autoresearch" / "models" / f"{ws.tag}-{name}.{r}.pt",
                            self.config.memory_limit_mb or runner.default_memory_limit_mb(), self.config.rescore,
                            compile_cache=compile_cache(self.harness), seed_offset=r, **limits)
                if m.value is None:
                    self.progress(f"  run {r + 1}: {m.state.value}: {m.reason.splitlines()[0] if m.reason else ''}")
                    return []
                self.progress(f"  run {r + 1}: {self.harness.metric} {m.value:.6f}")
                values.append(m.value)
            return values
        finally:
            ws.remove_worktree(tree)


def _pooled(groups) -> float:
    ss, dof = 0.0, 0
    for g in groups:
        g = [v for v in g if v is not None and math.isfinite(v)]
        if len(g) >= 2:
            m = statistics.fmean(g)
            ss += sum((v - m) ** 2 for v in g)
            dof += len(g) - 1
    return math.sqrt(ss / dof) if dof else 0.0
