"""The command line: parse flags, call the API, print. AutoresearchError -> message, exit 1.

    autoresearch init runs/demo --profile cpu      # a workspace: git repo + harness + branch
    autoresearch adopt ~/src/mymodel               # your own repository: writes a starter autoresearch.toml
    autoresearch prepare -C runs/demo              # data and tokenizer for its profile
    autoresearch run -C runs/demo --max-trials 10  # the study (Ctrl-C stops cleanly; run again resumes)
    autoresearch status -C runs/demo               # best, counts, last trials, what runs now
    autoresearch report -C runs/demo               # report.md + progress.png + report.html
    autoresearch dashboard -C runs/demo            # a live page on http://127.0.0.1:8765/
    autoresearch finalize -C runs/demo             # branch <tag>-final + an ablation of the kept changes
    autoresearch agents                            # which agents are installed and usable here

Also `python -m autoresearch ...`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from autoresearch.errors import AutoresearchError, ConfigError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autoresearch", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def ws(sp, tag=True):
        sp.add_argument("-C", "--workspace", default=os.environ.get("AUTORESEARCH_WORKSPACE", "."),
                        help="the workspace folder (default: current folder, or $AUTORESEARCH_WORKSPACE)")
        if tag:
            sp.add_argument("--tag", help="the run tag (branch autoresearch/<tag>); default: the checked-out one")

    sp = sub.add_parser("init", help="make a workspace: a git repo with the harness on branch autoresearch/<tag>")
    sp.add_argument("directory")
    sp.add_argument("--profile", help="smoke | cpu | mps | h100 (default: detected from the machine)")
    sp.add_argument("--tag", help="run tag (default: today's date, e.g. nov26); an existing tag is resumed")
    sp.add_argument("--data", default="embedded", help="embedded | climbmix | a folder of .parquet/.txt files")

    sp = sub.add_parser("adopt", help="your own git repository: run its script once and write a starter "
                                      "autoresearch.toml (commits nothing, copies nothing)")
    sp.add_argument("directory", nargs="?", default=".")
    sp.add_argument("--run", help="the command that trains and prints the metric (default: train.py, main.py, ...)")
    sp.add_argument("--seconds", type=float, default=600.0, help="stop the probing run after this long (default 600)")
    sp.add_argument("--force", action="store_true", help="overwrite an existing autoresearch.toml")

    sp = sub.add_parser("prepare", help="prepare data and tokenizer for the workspace's profile")
    ws(sp, tag=False)

    sp = sub.add_parser("run", help="run the study: baseline, then propose / run / judge / keep, until a limit")
    ws(sp)
    sp.add_argument("--agent", help="builtin (default) | claude | codex | openai | anthropic | command | a plug-in; "
                                    "builtin+claude (any LLM agent after the +): the optimiser with the LLM taking "
                                    "a share of the trials (-o llm_share=0.3)")
    sp.add_argument("--model", help="the agent's model")
    sp.add_argument("--base-url", help="the agent's API endpoint (openai, anthropic)")
    sp.add_argument("-o", "--agent-option", action="append", default=[], metavar="KEY=VALUE",
                    help="another agent option, e.g. -o max_turns=20 (repeatable)")
    sp.add_argument("--max-trials", type=int, help="stop after N trials in this run (baseline not counted)")
    sp.add_argument("--hours", type=float, help="stop after H hours")
    sp.add_argument("--max-cost", type=float, help="stop when the agent has cost this many US dollars in total")
    sp.add_argument("--stall", type=int, help="stop after N trials in a row without a keep")
    sp.add_argument("--prune", action=argparse.BooleanOptionalAction, default=None,
                    help="stop a run whose curve falls behind the best's beyond the noise (default: [study] prune, on)")
    sp.add_argument("--search", choices=["greedy", "tree"], help="greedy (default): every proposal improves the best; "
                                                                  "tree: one of the top tree_k trials ([study] tree_k, 3)")
    sp.add_argument("--baseline-runs", type=int, help="baseline repeats to measure noise (default 3)")
    sp.add_argument("--seed", type=int)
    sp.add_argument("--workers", type=int, help="trials in flight at once (default 1)")
    sp.add_argument("--executor", choices=["local", "ray"], help="where runs happen (default local)")
    sp.add_argument("--ray-address", help="join this Ray cluster instead of starting a local one")
    sp.add_argument("--mlflow", nargs="?", const="", default=None, metavar="URI",
                    help="log one MLflow run per trial to URI (default: [tracking] mlflow in autoresearch.toml, "
                         "$MLFLOW_TRACKING_URI, else .autoresearch/mlflow.db)")

    sp = sub.add_parser("status", help="the best trial, counts by state, the last trials, what is running")
    ws(sp)
    sp.add_argument("-n", "--last", type=int, default=10, help="how many recent trials to list")

    sp = sub.add_parser("report", help="write report.md, progress.png and report.html in the workspace")
    ws(sp)

    sp = sub.add_parser("dashboard", help="a live page of the study on 127.0.0.1 (reads the ledger, never writes it)")
    ws(sp)
    sp.add_argument("--port", type=int, default=8765, help="the port on 127.0.0.1 (default 8765; 0 picks a free one)")

    sp = sub.add_parser("finalize", help="branch autoresearch/<tag>-final (one commit per kept change) and an "
                                         "ablation: the final code with each kept change reverted alone")
    ws(sp)
    sp.add_argument("--repeats", type=int, default=3, help="runs of each ablated variant (default 3; 0: branch only)")

    sub.add_parser("agents", help="list the agents installed and whether each is usable here")
    return p


def _options(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"agent option {pair!r} is not KEY=VALUE")
        key, value = pair.split("=", 1)
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        if value in ("true", "false"):
            value = value == "true"
        out[key.strip().replace("-", "_")] = value
    return out


def _cmd_run(args) -> int:
    from autoresearch.config import Config
    from autoresearch.display import Console
    from autoresearch.harness import Harness
    from autoresearch.study import Study
    from autoresearch.workspace import Workspace

    ws = Workspace(args.workspace, tag=args.tag)
    harness = Harness.load(ws.root)
    config = Config.load(harness.section("study"), agent=args.agent, max_trials=args.max_trials, hours=args.hours,
                         max_cost=args.max_cost, baseline_runs=args.baseline_runs, seed=args.seed,
                         workers=args.workers, executor=args.executor, ray_address=args.ray_address,
                         stall=args.stall, search=args.search, prune=args.prune)
    options = _options(args.agent_option)
    if args.model:
        options["model"] = args.model
    if args.base_url:
        options["base_url"] = args.base_url
    display = Console(metric=harness.metric)
    study = Study(ws, agent=config.agent, agent_options=options, config=config, display=display)
    if args.mlflow is not None:
        from autoresearch import tracking
        study.tracker = tracking.for_study(ws, harness, args.mlflow or None, flag=True, report=display.message)
    try:
        study.optimize()
    finally:
        study.tracker.close()
    from autoresearch import report
    report.write(ws, harness, study.trials)
    print(report.summary(study.trials, harness.metric, harness.direction, ws.tag))
    return 0


def _cmd_status(args) -> int:
    from autoresearch import report, running
    ws, harness, trials = load_trials(args.workspace, args.tag)
    dir_ = ws.root / ".autoresearch" / ws.tag
    print(report.summary(trials, harness.metric, harness.direction, ws.tag, running.read(dir_), last=args.last))
    python, where = harness.interpreter()
    print(f"\npython    {python} ({where})")
    held, not_held = harness.protection()
    for label, lines in (("protected", held), ("not held", not_held)):
        for i, line in enumerate(lines):
            print(f"{label if i == 0 else '':9} {line}")
    return 0


def _cmd_report(args) -> int:
    from autoresearch import report
    ws, harness, trials = load_trials(args.workspace, args.tag)
    if not trials:
        raise AutoresearchError(f"no trials recorded on tag {ws.tag}: run `autoresearch run` first")
    md, png = report.write(ws, harness, trials)
    print(f"wrote {md}, {png} and {report.html_path(ws)}")
    return 0


def _cmd_dashboard(args) -> int:
    from autoresearch.dashboard import Dashboard
    board = Dashboard(args.workspace, args.tag, port=args.port)
    print(f"dashboard of tag {board.source.tag} on {board.url} (Ctrl-C stops it)", flush=True)
    board.serve()
    return 0


def _cmd_finalize(args) -> int:
    from autoresearch import report
    from autoresearch.finalize import Finalizer
    if args.repeats < 0:
        raise ConfigError("--repeats must be 0 or more")
    fin = Finalizer(args.workspace, args.tag, repeats=args.repeats, progress=lambda line: print(line, flush=True))
    record = fin.run()
    print("\n".join(report.ablation_markdown(record, record["metric"])).strip() or
          f"branch {record['branch']}: no kept change to ablate")
    print(f"branch {record['branch']}; report.md and report.html updated")
    return 0


def _cmd_agents(args) -> int:
    from autoresearch import agents
    for name, source, state in agents.status():
        print(f"{name:12} {source:16} {state}")
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.command:
        _parser().print_help()
        return 1
    # a polite kill (SIGTERM) stops like Ctrl-C: the run in flight is killed, nothing recorded is lost
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.command == "init":
            from autoresearch.workspace import init
            ws = init(args.directory, profile=args.profile, tag=args.tag, data=args.data)
            print(f"workspace {ws.root} on branch {ws.branch}\nnext: autoresearch prepare -C {args.directory} && "
                  f"autoresearch run -C {args.directory}")
            return 0
        if args.command == "adopt":
            from autoresearch.adopt import adopt
            print(adopt(args.directory, run=args.run, seconds=args.seconds, force=args.force))
            return 0
        if args.command == "prepare":
            from autoresearch.preparation import prepare
            prepare(args.workspace, progress=lambda line: print(line, flush=True))
            return 0
        return {"run": _cmd_run, "status": _cmd_status, "report": _cmd_report, "agents": _cmd_agents,
                "dashboard": _cmd_dashboard, "finalize": _cmd_finalize}[args.command](args)
    except AutoresearchError as e:
        print(f"autoresearch: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("autoresearch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:     # `autoresearch status | head`: the reader left, which is fine
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 0


def load_trials(workspace, tag: str | None = None):
    """The workspace, its harness and the tag's recorded trials (status, report)."""
    from autoresearch.harness import Harness
    from autoresearch.ledger import Ledger
    from autoresearch.workspace import Workspace
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace, tag=tag)
    harness = Harness.load(ws.root)
    return ws, harness, Ledger(ws.root, ws.tag, harness.metric).load()


if __name__ == "__main__":
    sys.exit(main())
