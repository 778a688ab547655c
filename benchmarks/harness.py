"""
Benchmark: the default harness's train.py beside a plain reference GPT of the same size,
same data, same time budget, same evaluator, in one run. Measured and printed, never asserted.

Usage:
    python benchmarks/harness.py                 # cpu profile, its 60 s budget
    python benchmarks/harness.py --budget 20     # quicker
    python benchmarks/harness.py --profile smoke

The reference: token + learned position embeddings, pre-LayerNorm blocks with GELU MLPs,
untied head, AdamW (lr 3e-3, linear warmdown over the last half), torch.compile'd fp32;
depth 2, width 128, batch 16 x seq len (FACTS.md measured 19.3k tokens/s, val_bpb 1.975 here).
Both use prepare.py's dataloader and evaluator and exclude the first 3 steps from the clock.
Tokens/s = tokens of all steps / counted training seconds, the same way for both.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "autoresearch", "harness")


def workspace(profile, budget):
    """A temp dir with the harness files; with --budget, an autoresearch.toml whose [harness] budget
    (the budget's one source, read by prepare.py) says so."""
    d = tempfile.mkdtemp(prefix="ar-bench-")
    for name in ("prepare.py", "train.py"):
        shutil.copy(os.path.join(HARNESS, name), d)
    if budget is not None:
        with open(os.path.join(d, "autoresearch.toml"), "w") as f:
            f.write(f"[harness]\nbudget = {budget}\n")
    return d


def run_harness(d, env):
    t0 = time.time()
    p = subprocess.run([sys.executable, "train.py"], cwd=d, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"harness train.py failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    block = p.stdout[p.stdout.rindex("\n---\n"):]
    s = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
    s = {k.strip(): float(v) for k, v in s.items()}
    return dict(name="harness train.py", params_M=s["num_params_M"], steps=int(s["num_steps"]),
                tok_s=s["total_tokens_M"] * 1e6 / s["training_seconds"], val_bpb=s["val_bpb"],
                seconds=time.time() - t0)


def reference(d):
    """Runs inside the workspace (cwd = d): the plain GPT, trained for the profile's budget."""
    sys.path.insert(0, d)
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import prepare

    depth, width, batch, lr, startup = 2, 128, 16, 3e-3, 3
    profile, device = prepare.get_profile(), torch.device("cpu")
    T = profile.max_seq_len
    tok = prepare.Tokenizer.load()
    V = tok.get_vocab_size()

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
            self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

        def forward(self, x):
            B, L, C = x.shape
            q, k, v = self.qkv(self.ln1(x)).view(B, L, 3, C // 64, 64).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, L, C)
            x = x + self.proj(y)
            return x + self.mlp(self.ln2(x))

    class PlainGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(V, width), nn.Embedding(T, width)
            self.blocks = nn.Sequential(*[Block() for _ in range(depth)])
            self.ln_f, self.head = nn.LayerNorm(width), nn.Linear(width, V, bias=False)

        def forward(self, idx):
            x = self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device))
            return self.head(self.ln_f(self.blocks(x)))

    torch.manual_seed(42)
    model = PlainGPT()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    fwd = torch.compile(model)
    loader = prepare.make_dataloader(tok, batch, T, "train", device)
    step, trained = 0, 0.0
    while not (step > startup and trained >= profile.time_budget):
        t0 = time.time()
        for g in opt.param_groups:  # constant, then linear warmdown over the last half
            g["lr"] = lr * min(1.0, 2 * (1 - min(trained / profile.time_budget, 1.0)))
        x, y = next(loader)
        loss = F.cross_entropy(fwd(x).view(-1, V), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        if step >= startup:
            trained += time.time() - t0
        step += 1
    model.eval()
    val_bpb, _ = prepare.evaluate_bpb(model, device)
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps(dict(name="reference plain GPT", params_M=params / 1e6, steps=step,
                          tok_s=step * batch * T / trained, val_bpb=val_bpb)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--budget", type=float, help="training seconds for both (default: the profile's)")
    ap.add_argument("--reference-in", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reference_in:
        return reference(args.reference_in)

    env = dict(os.environ, AUTORESEARCH_PROFILE=args.profile, PYTHONUNBUFFERED="1")
    d = workspace(args.profile, args.budget)
    try:
        subprocess.run([sys.executable, "prepare.py"], cwd=d, env=env, check=True, capture_output=True)
        ours = run_harness(d, env)
        t0 = time.time()
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--reference-in", d], cwd=d, env=env,
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"reference failed:\n{p.stderr[-3000:]}")
        ref = json.loads(p.stdout.strip().splitlines()[-1])
        ref["seconds"] = time.time() - t0
    finally:
        shutil.rmtree(d, ignore_errors=True)

    budget = args.budget or "profile"
    print(f"profile {args.profile}, budget {budget} s, {os.cpu_count()} CPUs")
    print(f"{'run':<20} {'params_M':>8} {'steps':>6} {'tokens/s':>10} {'val_bpb':>8} {'wall_s':>7}")
    for r in (ours, ref):
        print(f"{r['name']:<20} {r['params_M']:>8.2f} {r['steps']:>6} {r['tok_s']:>10,.0f} {r['val_bpb']:>8.4f} "
              f"{r['seconds']:>7.1f}")
    print(f"ratio harness/reference: tokens/s {ours['tok_s'] / ref['tok_s']:.2f}, "
          f"val_bpb {ours['val_bpb'] / ref['val_bpb']:.3f} (lower is better)")


if __name__ == "__main__":
    main()
