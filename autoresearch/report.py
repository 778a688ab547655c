"""Report: what people look at after a night of experiments.

`summary()` is the text `autoresearch status` prints; `write()` makes `report.md` (the results
table, the kept changes with their diffs, counts by state, cost, finalize's ablation when there
is one), `progress.png` like upstream's (every trial a point, kept ones highlighted, a
running-best step line, kept points labelled with their descriptions) and `report.html`: the
dashboard's views as one self-contained static page (page.py, views.py).
"""

from __future__ import annotations

import collections
import json
import os
import time
from pathlib import Path

from autoresearch import noise
from autoresearch.running import read as running  # noqa: F401  (running.json is running.py's)
from autoresearch.trial import Trial, TrialState


def _fmt(v) -> str:
    return f"{v:.6f}" if isinstance(v, (int, float)) else "-"


def counts(trials: list[Trial]) -> dict[str, int]:
    c = collections.Counter(t.state.value for t in trials if t.kind != "baseline")
    return {s.value: c.get(s.value, 0) for s in TrialState}


def summary(trials: list[Trial], metric: str = "val_bpb", direction: str = "minimize", tag: str = "",
            now_running: dict | None = None, last: int = 10) -> str:
    lines = [f"tag {tag}: {len(trials)} trials recorded" if tag else f"{len(trials)} trials recorded"]
    baseline = next((t for t in trials if t.kind == "baseline" and t.state == TrialState.KEEP), None)
    kept = [t for t in trials if t.state == TrialState.KEEP]
    best = kept[-1] if kept else None
    if baseline is not None:
        sd = baseline.reason
        n = len(baseline.values)
        lines.append(f"baseline  {metric} {_fmt(baseline.value)} ({n} run{'' if n == 1 else 's'}; {sd})")
    if best is not None:
        gain = ""
        if baseline is not None and best is not baseline and best.value is not None and baseline.value is not None:
            gain = f"  ({best.value - baseline.value:+.6f} vs baseline)"
        lines.append(f"best      {metric} {_fmt(best.value)} at trial {best.number} "
                     f"[{best.commit[:7]}] {best.description}{gain}")
        if "holdout" in best.extra and baseline is not None and "holdout" in baseline.extra:
            lines.append(f"holdout   {_fmt(best.extra['holdout'])} for the best vs {_fmt(baseline.extra['holdout'])} "
                         f"for the baseline ({best.extra['holdout'] - baseline.extra['holdout']:+.6f}; the split no "
                         f"agent sees: a val gain that does not show here is overfitting to val)")
    warning = noise.warning_for(trials)
    if warning:
        lines.append(f"warning   {warning}")
    c = counts(trials)
    lines.append("states    " + ", ".join(f"{k} {v}" for k, v in c.items()))
    cost = sum(t.cost_usd for t in trials)
    if cost:
        lines.append(f"cost      ${cost:.4f} ({sum(t.tokens_in for t in trials)} tokens in, "
                     f"{sum(t.tokens_out for t in trials)} out)")
    if now_running:
        # running.json: one trial at the top level; a parallel study adds "trials", a list of them
        for i, r in enumerate(now_running.get("trials") or [now_running]):
            since = time.time() - float(r.get("since", time.time()))
            where = f", {r['worker']}" if r.get("worker") else ""
            again = ", re-based" if r.get("rebased") else ""
            lines.append(f"{'running' if i == 0 else '':9} trial {r.get('number')}: {r.get('description', '')} "
                         f"({since:.0f} s so far{where}{again})")
    else:
        lines.append("running   nothing")
    if trials:
        lines.append("")
        lines.append(f"{'#':>4}  {'state':8} {metric:>10}  description")
        for t in trials[-last:]:
            lines.append(f"{t.number:>4}  {t.state.value:8} {_fmt(t.value):>10}  {t.description}")
    return "\n".join(lines)


def plot(trials: list[Trial], path: Path, metric: str = "val_bpb", direction: str = "minimize") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(14, 6))
    ran = [t for t in trials if t.value is not None and t.state in (TrialState.KEEP, TrialState.DISCARD)]
    disc = [t for t in ran if t.state == TrialState.DISCARD]
    kept = [t for t in ran if t.state == TrialState.KEEP]
    failed = [t for t in trials if t.state not in (TrialState.KEEP, TrialState.DISCARD)]
    ax.scatter([t.number for t in disc], [t.value for t in disc], c="#cccccc", s=14, label="discarded", zorder=2)
    ax.scatter([t.number for t in kept], [t.value for t in kept], c="#2ecc71", s=50, edgecolors="black",
               linewidths=0.5, label="kept", zorder=4)
    if kept:
        xs, ys = [], []
        last_x = max(t.number for t in trials)
        for i, t in enumerate(kept):
            xs.append(t.number)
            ys.append(t.value)
        ax.step(xs + [last_x], ys + [ys[-1]], where="post", c="#27ae60", lw=2, alpha=0.8, label="running best",
                zorder=3)
        for t in kept:
            label = t.description if len(t.description) <= 45 else t.description[:42] + "..."
            ax.annotate(label, (t.number, t.value), textcoords="offset points", xytext=(6, 6), fontsize=8,
                        color="#1a7a40", rotation=30, ha="left", va="bottom")
    if failed and ran:
        lo = min(t.value for t in ran)
        hi = max(t.value for t in ran)
        y = hi + 0.05 * ((hi - lo) or 1)
        ax.scatter([t.number for t in failed], [y] * len(failed), marker="x", c="#e74c3c", s=20,
                   label="crash / timeout / invalid", zorder=2)
    n_kept = max(0, len(kept) - 1)
    ax.set_title(f"autoresearch progress: {len(trials)} trials, {n_kept} kept improvements")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))   # trials are whole numbers
    ax.set_ylabel(f"{metric} ({'lower' if direction == 'minimize' else 'higher'} is better)")
    ax.grid(alpha=0.2)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def markdown(trials: list[Trial], workspace, metric: str, direction: str, tag: str) -> str:
    out = [f"# autoresearch report: tag {tag}", "", "```", summary(trials, metric, direction, tag, last=0), "```", "",
           "![progress](progress.png)", "", "## Trials", "",
           f"| # | state | {metric} | holdout | runs | seconds | cost $ | description |",
           "|---|---|---|---|---|---|---|---|"]
    for t in trials:
        desc = t.description.replace("|", "\\|")
        out.append(f"| {t.number} | {t.state.value} | {_fmt(t.value)} | {_fmt(t.extra.get('holdout'))} | "
                   f"{len(t.values)} | {t.seconds:.0f} | {t.cost_usd:.4f} | {desc} |")
    kept = [t for t in trials if t.state == TrialState.KEEP and t.kind != "baseline"]
    if kept:
        out += ["", "## Kept changes", ""]
        for t in kept:
            out += [f"### trial {t.number}: {t.description}", "",
                    f"{metric} {_fmt(t.value)} ({t.reason})", "", "```diff"]
            try:
                out.append(workspace.diff(t.parent, t.commit))
            except Exception as e:  # a pruned commit must not break the report
                out.append(f"(diff unavailable: {e})")
            out.append("```")
            out.append("")
    return "\n".join(out) + "\n"


def ablation_markdown(final: dict | None, metric: str) -> list[str]:
    """finalize's table: each kept change reverted alone from the final code."""
    if not final or not final.get("rows"):
        return []
    out = ["", "## Finalize: each kept change reverted alone", "",
           f"Branch `{final['branch']}` has one commit per kept change. The final code scores "
           f"{_fmt(final.get('final_mean'))} ({metric}, mean of {final.get('repeats')} runs; noise sd "
           f"{_fmt(final.get('noise_sd'))}). A contribution is how much worse the final code is without the change "
           f"(positive: it still helps).", "",
           "| trial | change | gain when kept | final without it | contribution | verdict |",
           "|---|---|---|---|---|---|"]
    for r in final["rows"]:
        desc = str(r.get("description", "")).replace("|", "\\|")
        contribution = r.get("contribution")
        c = f"{contribution:+.6f}" if isinstance(contribution, (int, float)) else "-"
        g = f"{r['gain']:+.6f}" if isinstance(r.get("gain"), (int, float)) else "-"
        verdict = ("**" + r["verdict"] + "**") if r.get("flag") else r["verdict"]
        out.append(f"| {r['trial']} | {desc} | {g} | {_fmt(r.get('without_mean'))} | {c} | "
                   f"{verdict} |")
    return out


def final_record(workspace) -> dict | None:
    try:
        return json.loads((Path(workspace.root) / ".autoresearch" / workspace.tag / "final.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def html_path(workspace) -> Path:
    """report.html beside report.md where git ignores it (workspaces made since it exists), else in
    the tag's folder under .autoresearch/: an untracked file in the work tree would be a change the
    study must refuse, and .git is never touched here."""
    import subprocess
    root = Path(workspace.root)
    from autoresearch.workspace import git_argv, git_env
    ignored = subprocess.run(git_argv("check-ignore", "-q", "report.html"), cwd=root, env=git_env()).returncode == 0
    return root / "report.html" if ignored else root / ".autoresearch" / workspace.tag / "report.html"


def write_html(workspace, path: Path | None = None) -> Path:
    """report.html: the dashboard's views of this tag, static, with every diff and log tail inside."""
    from autoresearch import page, views
    source = views.Source(workspace.root, workspace.tag)
    path = Path(path or html_path(workspace))
    path.parent.mkdir(parents=True, exist_ok=True)
    snap = source.snapshot(details=True)
    snap["running"] = []      # a static page shows what was recorded
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page.html(snap), encoding="utf-8")
    os.replace(tmp, path)
    return path


def write(workspace, harness, trials: list[Trial]) -> tuple[Path, Path]:
    """report.md, progress.png and report.html in the workspace root (all ignored by git)."""
    root = Path(workspace.root)
    png = plot(trials, root / "progress.png", harness.metric, harness.direction)
    md = root / "report.md"
    text = markdown(trials, workspace, harness.metric, harness.direction, workspace.tag)
    extra = ablation_markdown(final_record(workspace), harness.metric)
    md.write_text(text + ("\n".join(extra) + "\n" if extra else ""))
    write_html(workspace)
    return md, png
