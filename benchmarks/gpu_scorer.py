"""The protected scorer out of process, with and without the sandbox, against the in-process
evaluator, on one trained model: seconds and val_bpb side by side, each scorer run --repeats times
interleaved with the others (the same machine load for each), and the start of a sandboxed
process against a plain one; then the seconds these add per trial. For the lent GPU machine
(h100 profile); runs on the CPU too (cpu profile).

    AUTORESEARCH_CACHE=... python benchmarks/gpu_scorer.py --profile h100 --budget 20 --eval-tokens 2097152
    python benchmarks/gpu_scorer.py --profile cpu --budget 10 --repeats 3

Needs only torch, numpy, pyarrow, tiktoken, psutil and a prepared cache (no git, optuna or rustbpe).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REFERENCE = """
import sys, time, torch
sys.path.insert(0, ".")
t0 = time.time()
import prepare, train
ckpt = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
model = train.GPT(train.GPTConfig(**ckpt["config"]))
model.load_state_dict(ckpt["state_dict"])
device = prepare.get_device()
model.to(device).eval()
bpb, n = prepare.evaluate_bpb(model, device)
print("---"); print(f"val_bpb: {bpb:.6f}")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="h100")
    ap.add_argument("--budget", type=float, default=20)
    ap.add_argument("--eval-tokens", type=int, default=None)
    ap.add_argument("--sandbox", default="auto", choices=["auto", "bwrap", "none"])
    ap.add_argument("--repeats", type=int, default=3, help="each scorer this many times, interleaved")
    args = ap.parse_args()
    from autoresearch import harness as harness_mod, runner
    from autoresearch.measurement import checksums, measure
    from autoresearch.sandbox import detect

    d = Path(tempfile.mkdtemp(prefix="gpu-scorer-")) / "ws"
    d.mkdir(parents=True)
    harness_mod.copy_into(d, args.profile)
    p = d / "prepare.py"
    text = p.read_text()
    start = text.index(f'"{args.profile}": {{')
    head, tail = text[:start], text[start:]
    if args.eval_tokens:
        tail = re.sub(r'"EVAL_TOKENS": [0-9]+', f'"EVAL_TOKENS": {args.eval_tokens}', tail, count=1)
    p.write_text(head + tail)
    t = d / "autoresearch.toml"
    t.write_text(re.sub(r"^budget = [0-9.]+", f"budget = {args.budget}", t.read_text(), flags=re.M))
    h = harness_mod.Harness.load(d)
    box = detect(args.sandbox)
    print(f"profile {args.profile}, budget {args.budget:g} s, eval tokens {args.eval_tokens or 'profile'}, "
          f"sandbox {box.kind} {box.note[:80]}", flush=True)
    model = d / ".autoresearch" / "models" / "m.pt"
    t0 = time.time()
    m = measure(d, h, checksums(d, h.readonly), d / ".autoresearch" / "logs" / "m.log", model, sandbox=box,
                keep_model=True, timeout=900)       # a cold compile on a loaded CPU can take minutes
    total = time.time() - t0
    print(f"run + sandboxed score: state {m.state.value}, val_bpb {m.value}, run {m.result.seconds:.1f} s "
          f"(training {m.result.metric('training_seconds')}), score {total - m.result.seconds:.1f} s", flush=True)
    if m.value is None:
        print(m.reason[-3000:])
        for log in sorted((d / ".autoresearch" / "logs").glob("*.log")):
            print(f"== {log.name}\n" + log.read_text()[-3000:])
        return
    env = runner.scrub_env(extra={"AUTORESEARCH_PROFILE": args.profile, "AUTORESEARCH_BUDGET": f"{args.budget:g}",
                                  "AUTORESEARCH_CACHE": os.environ.get("AUTORESEARCH_CACHE", "")})
    from autoresearch.measurement import Walls, _score
    walls = Walls.of(h, box)

    def tool():                 # the tool's own path: score.py, its model workers in the sandbox
        r = _score(h.score, d, h, model, d / ".autoresearch" / "logs" / "score.log", 0.0, walls)
        return r.metric("val_bpb"), r

    def plain(argv):
        r = subprocess.run(argv, cwd=d, env=env, capture_output=True, text=True)
        if r.returncode:
            print(r.stderr[-2000:])
        return runner.parse_summary(r.stdout).get("val_bpb"), r

    scorers = [(f"workers, sandbox {box.kind} (the tool)", tool),
               ("workers, no sandbox", lambda: plain([sys.executable, "-I", "score.py", str(model)])),
               ("in-process evaluate_bpb (before)", lambda: plain([sys.executable, "-c", REFERENCE, str(model)]))]
    starts = [("start: python -c pass", [sys.executable, "-c", "pass"]),
              (f"start: python -c pass, sandbox {box.kind}",
               walls.wrap([sys.executable, "-c", "pass"], d, d / ".autoresearch" / "models"))]
    times = {name: [] for name, _ in scorers + starts}
    values = {}
    for _ in range(args.repeats):          # interleaved: each repeat sees the same machine load
        for name, fn in scorers:
            t0 = time.time()
            values[name], _ = fn()
            times[name].append(time.time() - t0)
        for name, argv in starts:
            for _ in range(5):
                t0 = time.time()
                subprocess.run(argv, cwd=d, env=env, capture_output=True)
                times[name].append(time.time() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{'scorer (median of ' + str(args.repeats) + ')':40} {'seconds':>8} {'val_bpb':>10}")
    for name, _ in scorers:
        v = values[name]
        print(f"{name:40} {med[name]:8.2f} {v if v is None else f'{v:.6f}':>10}")
    for name, _ in starts:
        print(f"{name:40} {med[name]:8.3f}")
    start_cost = med[starts[1][0]] - med[starts[0][0]]
    added = med[scorers[0][0]] - med[scorers[2][0]] + start_cost       # the run's own start, walled
    print(f"\nadded per trial: scoring out of process and sandboxed {med[scorers[0][0]] - med[scorers[2][0]]:+.2f} s, "
          f"the run's sandbox start {start_cost:+.3f} s: {added:+.2f} s per trial "
          f"(load average {os.getloadavg()[0]:.1f})")
    print("model sha256", hashlib.sha256(model.read_bytes()).hexdigest()[:12])


if __name__ == "__main__":
    main()
