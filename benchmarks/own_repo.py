"""The README's "Your own repository" recipe on a toy trainer nobody here wrote the harness for.

    python benchmarks/own_repo.py [--trials 6] [--keep DIR]

Builds the test suite's toy repository (tests/toy_repo.py: argparse flags, outputs in out/, a
`train loss: X test loss: Y` line), then types the recipe: `autoresearch adopt`, commit the toml,
`autoresearch run > run.log`, `autoresearch status`. Prints the starter toml, the results and
the checks that matter (rows, INVALID trials, the user's files, the run outputs). Prints, asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.toy_repo import git, make_toy_repo  # noqa: E402


def ar(*argv, cwd, out=None) -> str:
    r = subprocess.run([sys.executable, "-m", "autoresearch", *argv], cwd=cwd, stdout=out or subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return r.stdout or ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--keep", help="build the repository here (default: a temp dir)")
    args = p.parse_args()
    repo = make_toy_repo(Path(args.keep or tempfile.mkdtemp(prefix="autoresearch-own-")) / "toy")
    print(f"$ cd {repo}\n$ autoresearch run --max-trials 1\n{ar('run', '--max-trials', '1', cwd=repo)}")
    print(f"$ autoresearch adopt .\n{ar('adopt', '.', cwd=repo)}\n")
    print("--- autoresearch.toml\n" + (repo / "autoresearch.toml").read_text())
    git(repo, "add", "autoresearch.toml")
    git(repo, "commit", "-q", "-m", "autoresearch harness")
    (repo / "notes.txt").write_text("the user's own untracked file\n")
    with open(repo / "run.log", "w") as log:
        ar("run", "--max-trials", str(args.trials), "--tag", "toy", cwd=repo, out=log)
    print(f"$ git add autoresearch.toml && git commit -m 'autoresearch harness'\n"
          f"$ autoresearch run --max-trials {args.trials} --tag toy > run.log\n"
          + (repo / "run.log").read_text())
    print(f"$ autoresearch status\n{ar('status', cwd=repo)}")
    print("--- results.tsv\n" + (repo / "results.tsv").read_text())
    rows = (repo / "results.tsv").read_text().splitlines()[1:]
    print(f"rows {len(rows)} (baseline + {args.trials} trials expected); "
          f"INVALID rows {sum('[invalid]' in r for r in rows)}; out/ left: {(repo / 'out').exists()}; "
          f"git status: {git(repo, 'status', '--porcelain').splitlines()}")


if __name__ == "__main__":
    main()
