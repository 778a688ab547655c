"""Harness: what a study runs, as data in the workspace's `autoresearch.toml`.

The files an agent may edit, the read-only ones, the run / prepare / score commands, the
metric and its direction, the time budget. Nothing in the loop is specific to GPT training:
any repository with an `autoresearch.toml` is a harness. `copy_into()` lays down the default
GPT harness for a profile: prepare.py, train.py and program.md beside this file are package
data, copied into a workspace and run there, never imported by the tool.

`python` in a command is the repository's own interpreter when it has one (`python =` in
[harness], else `.venv/bin/python` or `venv/bin/python`), the tool's otherwise. A harness whose
script prints its score as a plain line (`test loss: 2.13`) names it with `metric_line`, a
regular expression whose first group is the value (the last match in the output counts).
"""

from __future__ import annotations

import ast
import dataclasses
import re
import shlex
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from autoresearch import hashing, knobs, runner
from autoresearch.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

TOML = "autoresearch.toml"
HARNESS_FILES = ("prepare.py", "score.py", "train.py", "program.md")


@dataclass(frozen=True)
class Harness:
    root: Path
    editable: tuple[str, ...] = ("train.py",)
    readonly: tuple[str, ...] = ("prepare.py",)
    run: str = "python train.py"
    prepare: str = ""                 # "" = nothing to prepare
    check: str = ""                   # exits 0 when prepared; "" = no check
    score: str = ""                   # re-scorer; {model} is the saved model's path; "" = trust the run
    holdout: str = ""                 # scores a kept model on a split the agent never hears of; "" = none
    metric: str = "val_bpb"
    direction: str = "minimize"
    budget: float = 60.0              # seconds of training the harness is allowed
    allowance: float = 0.0            # extra seconds for start-up and eval; 0 = automatic
    overrun: float = 0.0              # training seconds a run may claim beyond the budget; 0 = automatic
    profile: str = ""
    data: str = ""
    program: str = "program.md"       # the agent's instructions
    score_tolerance: float = 1e-3     # relative: printed vs re-scored metric
    preload: tuple[str, ...] = ()     # modules its python commands import: a spare interpreter has them ready
    python: str = ""                  # the interpreter `python` means; "" = the repo's .venv, else the tool's
    metric_line: str = ""             # regex; group 1 of its last match in the output is the metric
    hidden: tuple[str, ...] = ()      # paths a run must not see (the evaluation splits); {cache} = the data cache
    readable: tuple[str, ...] = ()    # paths a run reads besides the workspace and the venv (the data cache)
    max_write_mb: float = 2048.0      # what one run may write (its scratch folder); more is INVALID
    outputs: tuple[str, ...] = ()     # folders of the workspace a run writes into (sandbox: backed by its scratch)
    search: dict = field(default_factory=dict)   # builtin agent: NAME -> [low, high, "log"|"int"|...]
    raw: dict = field(default_factory=dict)      # the whole parsed toml (agents, prices, study)

    @classmethod
    def load(cls, root: str | Path) -> "Harness":
        root = Path(root).resolve()
        path = root / TOML
        if not path.exists():
            raise ConfigError(f"{path} not found: {next_step(root)}")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path} is not valid TOML: {e}. Fix the file (see README: autoresearch.toml)") from e
        h = raw.get("harness", {})
        if not isinstance(h, dict):
            raise ConfigError(f"{path}: [harness] must be a table")
        known = {"editable", "readonly", "run", "prepare", "check", "score", "holdout", "metric", "direction", "budget",
                 "allowance", "overrun", "program", "score_tolerance", "preload", "hidden", "readable", "max_write_mb",
                 "python", "metric_line", "outputs"}
        unknown = set(h) - known
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) in [harness]: {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(sorted(known))}")
        kw = {k: h[k] for k in known if k in h}
        for k in ("editable", "readonly", "preload", "hidden", "readable", "outputs"):
            if k in kw:
                if not isinstance(kw[k], list) or not all(isinstance(x, str) for x in kw[k]):
                    raise ConfigError(f"{path}: harness.{k} must be a list of "
                                      f"{'module names' if k == 'preload' else 'file names'}")
                kw[k] = tuple(kw[k])
        for k in ("budget", "allowance", "overrun", "score_tolerance", "max_write_mb"):
            if k in kw and (not isinstance(kw[k], (int, float)) or kw[k] < 0):
                raise ConfigError(f"{path}: harness.{k} must be a non-negative number")
        if kw.get("direction", "minimize") not in ("minimize", "maximize"):
            raise ConfigError(f"{path}: harness.direction must be \"minimize\" or \"maximize\"")
        for out in kw.get("outputs", ()):
            parts = Path(out).parts
            if not parts or Path(out).is_absolute() or ".." in parts or parts[0] in (".git", ".autoresearch"):
                raise ConfigError(f"{path}: harness.outputs names folders inside the repository (like \"out\"), "
                                  f"not {out!r}")
        for k in ("python", "metric_line", "run"):
            if k in kw and not isinstance(kw[k], str):
                raise ConfigError(f"{path}: harness.{k} must be a string")
        if kw.get("metric_line"):
            try:
                if re.compile(kw["metric_line"]).groups < 1:
                    raise re.error("no group")
            except re.error as e:
                raise ConfigError(f"{path}: harness.metric_line must be a regular expression with one group "
                                  f"around the number, e.g. 'test loss:\\s*([-+0-9.eE]+)' ({e})") from None
        search = raw.get("search", {})
        if not isinstance(search, dict):
            raise ConfigError(f"{path}: [search] must be a table of NAME = [low, high] ranges")
        harness = cls(root=root, profile=str(raw.get("profile", "")), data=str(raw.get("data", "")),
                      search=search, raw=raw, **kw)
        if not harness.editable:
            raise ConfigError(f"{path}: harness.editable is empty: name the file(s) the agent may edit")
        overlap = set(harness.editable) & set(harness.readonly)
        if overlap:
            raise ConfigError(f"{path}: {', '.join(sorted(overlap))} cannot be both editable and read-only")
        return harness

    @property
    def timeout(self) -> float:
        """Wall-clock seconds after which the runner kills the run (budget + allowance)."""
        allowance = self.allowance or max(120.0, 0.5 * self.budget)   # start-up, compile, eval
        return self.budget + allowance

    def paths(self, key: str) -> list[Path]:
        """hidden or readable, with {cache} expanded (AUTORESEARCH_CACHE or ~/.cache/autoresearch)."""
        import os
        cache = os.environ.get("AUTORESEARCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "autoresearch")
        return [Path(p.replace("{cache}", cache)).expanduser() for p in getattr(self, key)]

    def modules(self) -> str:
        """The harness' own Python modules, by name: all a scorer's model worker may import from the workspace."""
        return ",".join(Path(n).stem for n in (*self.readonly, *self.editable) if n.endswith(".py") and "/" not in n)

    def fingerprint(self) -> str:
        """Identifies the harness a tag's results belong to: read-only files, metric, budget."""
        return hashing.files_hash(self.root, self.readonly,
                                  f"{self.metric}|{self.direction}|{self.budget}|{self.profile}|{self.data}|{self.run}")

    def required_files(self) -> tuple[str, ...]:
        """What a study needs committed: this file and the editable ones (read-only ones may be untracked)."""
        return (TOML, *self.editable)

    # ------------------------------------------------------------------ which python, which metric
    def interpreter(self) -> tuple[str, str]:
        """(path, where it comes from) of the interpreter a leading `python` in a command means."""
        if self.python:
            path = Path(self.python).expanduser()
            path = path if path.is_absolute() else self.root / path
            if not path.exists():
                raise ConfigError(f"{self.root / TOML}: harness.python = {self.python!r} does not exist: "
                                  f"point it at the interpreter of your environment (or remove it)")
            return str(path), "python = in autoresearch.toml"
        for venv in (".venv", "venv"):
            for rel in ("bin/python", "Scripts/python.exe"):
                if (self.root / venv / rel).exists():
                    return str(self.root / venv / rel), f"the repository's {venv}"
        return sys.executable, "the tool's own: no .venv here and no python = in [harness]"

    def command(self, text: str, isolated: bool = False, **fmt) -> list[str]:
        """argv of a harness command; a leading `python` is `interpreter()` (see runner.command)."""
        argv = runner.command(text, isolated=isolated, **fmt)
        if argv and shlex.split(text)[:1] in (["python"], ["python3"]):
            argv[0] = self.interpreter()[0]
        return argv

    def summarize(self, result):
        """A run's RunResult with the metric read by `metric_line` from its output, when the run prints no
        summary block holding it."""
        if not self.metric_line or result.metric(self.metric) is not None:
            return result
        found = re.findall(self.metric_line, result.tail or "")
        if not found:
            return result
        last = found[-1][0] if isinstance(found[-1], tuple) else found[-1]
        try:
            value = float(last)
        except ValueError:
            return result
        return dataclasses.replace(result, summary={**result.summary, self.metric: value})

    def protection(self) -> tuple[list[str], list[str]]:
        """(what guards the score of this harness, what does not): README "What is protected"."""
        ro = ", ".join(self.readonly) or "none named"
        held = [f"read-only files checksummed before and after every run ({ro})",
                f"external time limit ({self.timeout:g} s, process group killed)",
                "scrubbed environment (no keys or tokens), memory limit, ledger writes rejected"]
        if self.score:
            return held + ["the protected evaluator re-scores every saved model; a printed metric that disagrees "
                           "is INVALID"], []
        return held, [f"re-scoring: there is no `score` command, so {self.metric} is what the editable script "
                      f"prints; an edit to how it is computed or printed is not caught (keep that code in a "
                      f"read-only file)"]

    def section(self, name: str) -> dict:
        value = self.raw.get(name, {})
        return value if isinstance(value, dict) else {}


def next_step(root: str | Path) -> str:
    """What to do in a folder that has no autoresearch.toml yet."""
    import subprocess
    root = Path(root)
    if not root.is_dir():
        return f"run `autoresearch init {root}` to make a workspace with the GPT harness there"
    r = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "HEAD"], cwd=root, capture_output=True, text=True)
    if r.returncode == 0 and r.stdout.strip():
        return (f"run `autoresearch adopt {root}` to write one for your repository (it runs your script once), "
                f"review it, commit it, then run again")
    return (f"run `autoresearch init {root}` to make a workspace with the GPT harness, or commit your code and "
            f"run `autoresearch adopt {root}`")


# ---------------------------------------------------------------- the default GPT harness

def _package_file(name: str) -> str:
    return resources.files("autoresearch.harness").joinpath(name).read_text()


def profiles() -> dict[str, dict]:
    """prepare.py's PROFILES dict, read with ast (no torch import)."""
    tree = knobs.parse(_package_file("prepare.py"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "PROFILES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError("autoresearch/harness/prepare.py has no PROFILES literal")


def default_profile() -> str:
    """cuda -> h100-class or mps, else cpu; probes torch only when called."""
    try:
        import torch
    except ImportError:
        return "cpu"
    if torch.cuda.is_available():
        return "h100"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


# search ranges of the builtin agent for the default harness: NAME = [low, high, scale]
DEFAULT_SEARCH = {
    "MATRIX_LR": [0.005, 0.2, "log"],
    "EMBEDDING_LR": [0.05, 2.0, "log"],
    "UNEMBEDDING_LR": [0.0005, 0.05, "log"],
    "SCALAR_LR": [0.05, 2.0, "log"],
    "WEIGHT_DECAY": [0.0, 0.4, "linear"],
    "WARMUP_RATIO": [0.0, 0.2, "linear"],
    "WARMDOWN_RATIO": [0.1, 0.9, "linear"],
    "FINAL_LR_FRAC": [0.0, 0.2, "linear"],
    "ADAM_BETA1": [0.7, 0.95, "linear"],
    "ADAM_BETA2": [0.9, 0.999, "linear"],
    "DEPTH": [1, 6, "int"],
    # not DEVICE_BATCH_SIZE: most values do not divide TOTAL_BATCH_SIZE, and train.py refuses those
}


# what a GPU profile's spare interpreters import ahead (autoresearch/warm.py): torch, and the modules
# torch.compile loads on its first call (on a 2-core CPU: torch ~1.5 s, these ~2.5 s more)
GPU_PRELOAD = ("torch", "torch._dynamo", "torch._inductor.compile_fx", "torch._functorch.aot_autograd",
               "torch._inductor.codegen.cpp", "torch.export")


def preload_line(modules) -> str:
    """`preload = [...]` as autoresearch.toml writes it."""
    return "preload = [" + ", ".join(f'"{m}"' for m in modules) + "]"


def default_toml(profile: str, data: str = "embedded") -> str:
    spec = profiles()[profile]
    budget = spec["TIME_BUDGET"]
    source = knobs.find(_package_file("train.py"))
    lines = [f"{name} = [{lo!r}, {hi!r}, {scale!r}]".replace("'", '"')
             for name, (lo, hi, scale) in DEFAULT_SEARCH.items() if name in source]
    search = "\n".join(lines)
    if profile in ("cpu", "smoke"):
        preload = ("# modules a spare interpreter imports ahead of each python command (see README); none on a CPU:\n"
                   "# there the import competes with the run for the same cores (measured: no gain on 2 cores)\n"
                   + preload_line(()))
    else:
        preload = ("# imported ahead by a spare interpreter while the accelerator trains, so no command waits for\n"
                   "# them (on a 2-core CPU: torch ~1.5 s, torch.compile's modules ~2.5 s more)\n"
                   + preload_line(GPU_PRELOAD))
    overrun = ("overrun = 30                             # smoke runs are tests, often on a loaded machine where one step\n"
               "                                         # can stall for seconds: training may run this far past the budget"
               if profile == "smoke" else
               "# overrun = 0                            # training seconds allowed past the budget; 0: 2 s, 10% or two steps")
    return f'''# autoresearch.toml: the harness of this workspace, as data (see README).
profile = "{profile}"    # fixes prepare.py's constants; results compare only within a profile
data = "{data}"          # embedded | climbmix | /path/to/folder (parquet with a text column, or .txt)

[harness]
editable = ["train.py"]                  # the only files an agent may change
readonly = ["prepare.py", "score.py"]    # checksummed before every run; a change makes the trial INVALID
run = "python train.py"                  # started in its own process group, killed past budget + allowance
prepare = "python prepare.py"            # `autoresearch prepare` runs this
check = "python prepare.py --check"      # exits 0 when the data and tokenizer are there
score = "python score.py {{model}}"      # the protected evaluator re-scores the saved model (train.py's code
                                         # runs only in its sandboxed model worker, never where the loss is computed)
holdout = "python score.py {{model}} --split holdout"  # kept models only; never shown to the agent
hidden = ["{{cache}}/eval"]                # the evaluation splits: training runs do not see them (sandbox)
readable = ["{{cache}}"]                   # the data cache, read-only for runs
metric = "val_bpb"
direction = "minimize"
budget = {budget}                        # seconds of training; prepare.py reads it (the profile's TIME_BUDGET is its default)
{overrun}
{preload}

[study]
baseline_runs = 3      # the baseline runs this many times to measure the metric's noise
sigma = 2.0            # keep only gains larger than sigma x the noise of the difference
min_delta = 0.0        # and at least this large
confirm_band = 1.5     # a gain within this many standard errors of the threshold is re-run before deciding
max_repeats = 4        # measurements of one candidate at most
rerun_best = true      # a close call re-measures the best too

# Search ranges of the builtin agent: NAME = [low, high, "log" | "linear" | "int" | "int_log"]
[search]
{search}
'''


def copy_into(directory: str | Path, profile: str, data: str = "embedded") -> None:
    """Write the default GPT harness for `profile` into directory (files must not exist yet)."""
    table = profiles()
    if profile not in table:
        raise ConfigError(f"unknown profile {profile!r}; known: {', '.join(table)}")
    directory = Path(directory)
    for name in HARNESS_FILES:
        text = _package_file(name)
        if name == "train.py":
            defaults = table[profile].get("train", {})
            text = knobs.rewrite(text, {k: v for k, v in defaults.items() if k in knobs.find(text)})
        (directory / name).write_text(text)
    (directory / TOML).write_text(default_toml(profile, data))
