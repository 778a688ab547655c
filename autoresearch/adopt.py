"""Adopt: set up an existing repository for a study, copying nothing into it.

    autoresearch adopt REPO [--run "python train.py --steps 500"] [--seconds 600]

Finds the script (the run command given, else train.py, main.py, run.py or the one tracked .py
file with a `__main__` block), runs it once under a time limit with the interpreter a study
would use, and writes a starter `autoresearch.toml` from what it saw: the metric (a `---`
summary block, else the last `name: number` line such as `test loss: 2.13`, read by a
`metric_line` pattern), the files the script read (read-only) and the folders it wrote into
(`outputs`), its hyperparameters (argparse defaults and UPPER_CASE constants, as [search]
ranges) and a time budget from the run's length. The probing run is the user's own script run at
their request, outside the sandbox; what it wrote is removed again. It commits nothing and never
copies the GPT harness; `adopt()` returns the report the CLI prints, ending with the next step.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch import knobs, runner
from autoresearch.errors import ConfigError, WorkspaceError
from autoresearch.harness import TOML, Harness

SCRIPT_NAMES = ("train.py", "main.py", "run.py", "train_gpt.py", "model.py")
# a metric is a number after a name holding one of these words; the first group maximizes
MAXIMIZE = ("acc", "accuracy", "f1", "auc", "score", "reward", "precision", "recall", "map", "bleu", "top1", "top5")
MINIMIZE = ("loss", "bpb", "bpc", "ppl", "perplexity", "error", "err", "nll", "mse", "mae", "rmse", "wer", "cer")
HELD_OUT = ("val", "valid", "validation", "test", "eval", "dev", "holdout")
# knobs a starter [search] leaves out (written commented): plumbing, or more work rather than a better idea
NOT_SEARCHED = re.compile(r"seed|device|worker|interval|every|log|print|verbose|save|ckpt|checkpoint|rank|port|"
                          r"steps|iters|epoch|patience|eval|compile|dtype|^out|dir$|path|file|gpu|cuda",
                          re.I)
NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_PAIR = re.compile(r"(?<![A-Za-z0-9_])([A-Za-z][A-Za-z0-9_]*(?:[ _][A-Za-z][A-Za-z0-9_]*)*)\s*[:=]?\s*" + NUMBER
                   + r"(?![\w.])")
MAX_READONLY_BYTES = 100 * 2**20     # bigger inputs are listed, not checksummed before every run

# installed on PYTHONPATH for the probing run only: logs every file the script opens (audit hook)
_TRACER = '''\
import os, sys
_path = os.environ.get("AUTORESEARCH_TRACE")
if _path:
    _log = open(_path, "a", buffering=1)
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    def _hook(event, args):
        if event != "open" or not args or args[0] is None or isinstance(args[0], int):
            return
        try:
            mode, flags = (args[1] if len(args) > 1 else "r"), (args[2] if len(args) > 2 else 0)
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE)
            _log.write(("w" if writes else "r") + "\\t" + os.path.abspath(os.fsdecode(args[0])) + "\\n")
        except Exception:
            pass
    sys.addaudithook(_hook)
'''


@dataclass
class Found:
    """What one probing run showed."""
    metric: str = ""
    direction: str = "minimize"
    line: str = ""                 # metric_line regex; "" when a summary block holds the metric
    example: str = ""              # the output line it was read from
    value: float | None = None
    others: list = field(default_factory=list)    # other candidate names seen


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[\s_]+", name.lower()) if w]


def _rank(name: str) -> tuple | None:
    words = _words(name)
    if not any(w in MINIMIZE or w in MAXIMIZE for w in words):
        return None
    return (any(w in HELD_OUT for w in words), "train" not in words)


def read_metric(output: str) -> Found:
    """The metric a study should use, from one run's output: a summary block's key, else a plain line."""
    summary = runner.parse_summary(output)
    keys = [k for k in summary if isinstance(summary[k], float) and _rank(k)]
    if keys:
        best = max(keys, key=lambda k: _rank(k))
        return Found(best, _direction(best), "", f"{best}: {summary[best]}", summary[best],
                     [k for k in keys if k != best])
    seen: dict[str, tuple] = {}      # name -> (rank, last position, value, line)
    for i, line in enumerate(output.splitlines()):
        for m in _PAIR.finditer(line):
            name, value = " ".join(m.group(1).split()), m.group(2)
            rank = _rank(name)
            if rank is not None:
                seen[name] = (rank, i, float(value), line.strip())
    if not seen:
        return Found()
    name = max(seen, key=lambda n: (seen[n][0], seen[n][1]))
    key = re.sub(r"\W+", "_", name.lower()).strip("_")
    pattern = r"\s+".join(re.escape(w) for w in name.split())
    line = r"(?<![A-Za-z0-9_])" + pattern + r"\s*[:=]?\s*" + NUMBER
    return Found(key, _direction(name), line, seen[name][3], seen[name][2], [n for n in seen if n != name])


def _direction(name: str) -> str:
    return "maximize" if any(w in MAXIMIZE for w in _words(name)) else "minimize"


def find_script(root: Path, tracked: list[str]) -> str:
    """The script to run: a usual name, else the one tracked .py file with a __main__ block."""
    for name in SCRIPT_NAMES:
        if name in tracked:
            return name
    mains = []
    for name in tracked:
        if name.endswith(".py") and "/" not in name:
            try:
                if "__main__" in (root / name).read_text(errors="replace"):
                    mains.append(name)
            except OSError:
                continue
    if len(mains) == 1:
        return mains[0]
    what = f"several scripts ({', '.join(mains[:6])})" if mains else "no script with a __main__ block at the top"
    raise ConfigError(f"{root}: found {what}; say which trains with --run, e.g. "
                      f"`autoresearch adopt {root} --run \"python train.py --steps 500\"`")


def _script_of(run: str) -> str:
    argv = shlex.split(run)
    return next((a for a in argv if a.endswith(".py")), "")


def search_ranges(source: str, run: str) -> tuple[dict, dict]:
    """([search] ranges, {left-out name: why}) for a script's numeric knobs."""
    try:
        found = knobs.find(source)
    except (SyntaxError, ValueError):
        return {}, {}
    on_command = set(knobs.on_command(run, found))
    ranges, left = {}, {}
    for name, k in found.items():
        v = k.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        spec = _range(name, v)
        if spec is None:
            continue
        if name in on_command:
            left[name] = (spec, f"{k.flag} is set on the run command, so its default does nothing")
        elif NOT_SEARCHED.search(name):
            left[name] = (spec, "plumbing or run length, not searched by default")
        else:
            ranges[name] = spec
    return ranges, left


def _round(x: float) -> float:
    return float(f"{x:.3g}")


def _range(name: str, v) -> list | None:
    low = name.lower()
    if isinstance(v, int):
        if v < 2:
            return None                       # 0 / 1: a switch, not a size
        return [max(1, v // 2), v * 2, "int_log" if v >= 8 else "int"]   # sizes move by factors
    if "drop" in low:
        return [0.0, _round(min(0.5, max(0.2, 2 * v))), "linear"]
    if v == 0:
        return [0.0, 0.1, "linear"]
    if v < 0:
        return None
    if any(w in low for w in ("beta", "momentum", "gamma", "ema")) and v < 1:
        return [_round(max(0.0, 2 * v - 1)), _round(min(0.999, (1 + v) / 2)), "linear"]
    return [_round(v / 10), _round(v * 10), "log"]


def _snapshot(root: Path) -> set[str]:
    out = set()
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (".git", ".venv", "venv", "__pycache__", ".autoresearch")]
        out.update(os.path.relpath(os.path.join(dirpath, f), root) for f in files)
    return out


def probe(root: Path, harness: Harness, seconds: float) -> tuple[runner.RunResult, set[str], set[str], str]:
    """Run the harness' run command once, tracing the files it opens. (result, read, written, output);
    files the run created are removed afterwards."""
    before = _snapshot(root)
    with tempfile.TemporaryDirectory(prefix="autoresearch-adopt-") as tmp:
        tmp = Path(tmp)
        (tmp / "sitecustomize.py").write_text(_TRACER)
        trace = tmp / "trace.tsv"
        extra = {"AUTORESEARCH_TRACE": str(trace), "AUTORESEARCH_TRIAL": "0",
                 "PYTHONPATH": os.pathsep.join([str(tmp), *filter(None, [os.environ.get("PYTHONPATH")])])}
        env = runner.scrub_env(extra=extra)
        result = runner.run(harness.command(harness.run), root, seconds, tmp / "run.log", env=env)
        output = (tmp / "run.log").read_text(errors="replace") if (tmp / "run.log").exists() else result.tail
        read, written = set(), set()
        for line in (trace.read_text(errors="replace").splitlines() if trace.exists() else ()):
            mode, _, path = line.partition("\t")
            try:
                rel = Path(path).resolve().relative_to(root)
            except ValueError:
                continue
            if rel.parts and rel.parts[0] in (".git", ".venv", "venv", "__pycache__") or "__pycache__" in rel.parts:
                continue
            (written if mode == "w" else read).add(rel.as_posix())
    created = _snapshot(root) - before
    for rel in created:
        (root / rel).unlink(missing_ok=True)
    for rel in sorted({str(Path(r).parent) for r in created}, key=len, reverse=True):
        d = root / rel
        while d != root and d.is_dir() and not any(d.iterdir()):
            d.rmdir()
            d = d.parent
    return result, read - written, written | created, output


def _q(text: str) -> str:
    """A TOML string: a literal '...' when possible (regexes stay readable), else a basic one."""
    if "'" not in text and "\n" not in text:
        return f"'{text}'"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def adopt(directory: str | Path, run: str | None = None, seconds: float = 600.0, force: bool = False) -> str:
    """Write a starter autoresearch.toml for the repository in directory; return what to tell the user."""
    from autoresearch.workspace import Workspace
    root = Path(directory).resolve()
    ws = Workspace(root)
    if not ws.git("rev-parse", "--verify", "--quiet", "HEAD", check=False):
        raise WorkspaceError(f"{root} has no commits: commit your code first (`git add -A && git commit`), "
                             f"then adopt it")
    if (root / TOML).exists() and not force:
        raise ConfigError(f"{root / TOML} exists already: edit it, or adopt again with --force to overwrite it")
    tracked = ws.git("ls-files").splitlines()
    run = run or f"python {find_script(root, tracked)}"
    script = _script_of(run)
    if not script or not (root / script).is_file():
        raise ConfigError(f"the run command `{run}` names no .py file of {root}: give --run \"python SCRIPT.py ...\"")
    if script not in tracked:
        raise WorkspaceError(f"{script} is not committed: commit it first (the study runs what git holds)")
    harness = Harness(root=root, editable=(script,), readonly=(), run=run)
    python, python_from = harness.interpreter()
    result, read, written, output = probe(root, harness, seconds)
    found = read_metric(output)
    if not found.metric:
        raise ConfigError(f"`{run}` printed no `name: number` line with a metric name ({', '.join(MINIMIZE[:4])}, "
                          f"acc, ...) (exit {result.returncode}{', killed after %g s' % seconds if result.timed_out else ''}). "
                          f"Make it print its score, e.g. `print(f\"val loss: {{loss:.4f}}\")`, and adopt again. "
                          f"Last output:\n{result.tail[-1500:]}")
    if result.returncode not in (0, None) and not result.timed_out:
        raise ConfigError(f"`{run}` failed (exit {result.returncode}); fix it so it runs here with {python} "
                          f"({python_from}), then adopt again. Last output:\n{result.tail[-1500:]}")
    readonly = sorted(p for p in read if p != script and p != TOML and (root / p).is_file()
                      and (root / p).stat().st_size <= MAX_READONLY_BYTES)
    big = sorted(p for p in read if (root / p).is_file() and (root / p).stat().st_size > MAX_READONLY_BYTES)
    ranges, left = search_ranges((root / script).read_text(errors="replace"), run)
    budget = max(1, math.ceil(result.seconds * 1.5)) if not result.timed_out else math.ceil(seconds)
    text = starter_toml(run, script, readonly, big, found, budget, ranges, left, written, python, python_from, result)
    (root / TOML).write_text(text)
    ws.exclude_tool_files()
    Harness.load(root)                     # what we wrote must load
    return _report(root, directory, run, found, result, seconds, readonly, written, ranges, python, python_from, budget)


def starter_toml(run, script, readonly, big, found, budget, ranges, left, written, python, python_from,
                 result) -> str:
    arr = lambda xs: "[" + ", ".join(_q(x) for x in xs) + "]"  # noqa: E731
    out = [f"# autoresearch.toml: written by `autoresearch adopt` from one run of `{run}`",
           f"# ({result.seconds:.1f} s, exit {result.returncode}). Review it, commit it, then `autoresearch run`.",
           "", "[harness]",
           f"editable = {arr([script])}        # the only files an agent may change",
           f"readonly = {arr(readonly)}        # the files the run read: checksummed before and after every run"]
    if big:
        out.append(f"# also read, too big to checksum every run (add them to readonly if they must not change): "
                   f"{', '.join(big)}")
    out += [f"run = {_q(run)}",
            f"# python: {python} ({python_from.split(':')[0]}); python = \"path\" chooses another"]
    folders = sorted({w.split("/")[0] for w in written if "/" in w})
    loose = sorted(w for w in written if "/" not in w)
    if folders:
        out.append(f"outputs = {arr(folders)}        # folders the run writes into: emptied after every measurement")
    if loose:
        out.append(f"# the run also writes {', '.join(loose[:6])} beside the code: under the sandbox a run may write "
                   f"only into `outputs` folders, so point it into one")
    out += [f"metric = {_q(found.metric)}",
            f"direction = \"{found.direction}\""]
    if found.line:
        out.append(f"metric_line = {_q(found.line)}   # the last match counts; seen: {found.example[:80]}")
    out += [f"budget = {budget}                      # seconds; a run is killed (TIMEOUT) past budget + allowance",
            "# no `score` command: the metric is what the script prints, nothing re-scores it (README: what is",
            "# protected). Keep the evaluation in a read-only file if an agent must not change it.", "",
            "[study]",
            "baseline_runs = 3     # repeats of the unchanged script, to measure the metric's noise",
            "# min_delta = 0.0     # the smallest gain worth keeping (used when repeats are identical)",
            "", "# the builtin agent's ranges: NAME = [low, high, \"log\" | \"linear\" | \"int\"]", "[search]"]
    for name, spec in ranges.items():
        out.append(f"{name} = {_spec(spec)}")
    for name, (spec, why) in left.items():
        out.append(f"# {name} = {_spec(spec)}   # {why}")
    return "\n".join(out) + "\n"


def _spec(spec) -> str:
    lo, hi, scale = spec
    return f"[{knobs.format_value(lo) if isinstance(lo, float) else lo}, " \
           f"{knobs.format_value(hi) if isinstance(hi, float) else hi}, \"{scale}\"]"


def _report(root, shown, run, found, result, seconds, readonly, written, ranges, python, python_from, budget) -> str:
    lines = [f"ran `{run}` once ({result.seconds:.1f} s) with {python} ({python_from})",
             f"metric    {found.metric} ({found.direction}; {found.value:g} in: {found.example[:100]})",
             f"read-only {', '.join(readonly) or '-'}",
             f"outputs   {', '.join(sorted(written)[:6]) or '-'} (removed again)",
             f"search    {', '.join(ranges) or '- (none found: add [search] ranges, or use an LLM agent)'}",
             f"budget    {budget} s"]
    if not any(w in HELD_OUT for w in _words(found.metric)):
        lines.append(f"warning   {found.metric} is not a held-out score (no val/test/eval line seen): the study would "
                     f"optimize it as printed; make the run print a held-out score (e.g. more steps, so that an "
                     f"evaluation happens) and adopt again, or accept it")
    if result.timed_out:
        lines.append(f"warning   the run did not finish in {seconds:g} s: make a run shorter (fewer steps) or raise "
                     f"budget, else every trial is a TIMEOUT")
    here = str(shown) in (".", "") or Path(shown).resolve() == Path.cwd()
    git = "git" if here else f"git -C {shlex.quote(str(shown))}"
    lines += [f"wrote {root / TOML}", "next:",
              f"  review {Path(shown) / TOML}, then commit it:",
              f"  {git} add {TOML} && {git} commit -m 'autoresearch harness'",
              f"  autoresearch run{'' if here else ' -C ' + shlex.quote(str(shown))} --max-trials 10"]
    return "\n".join(lines)
