"""
READ-ONLY: the protected scorer. Scores a model that train.py saved, and never runs train.py's
code in its own process.

    python -I score.py MODEL [--split val|holdout]     # what the tool runs (the score command)

Two halves:
- this process (trusted): checks the data and tokenizer files against the digests written at
  prepare, builds the evaluation batches, and computes the loss and the bytes from the model's
  logits itself (log-softmax, target gather, sums in float64);
- model workers (untrusted, `score.py --worker`): import train.py, load the weights, and answer
  token batches with logits through a file; started inside the tool's sandbox when there is one
  (AUTORESEARCH_WALLS: the argv prefix, `{scratch}` standing for the worker's own folder).
Causality is probed by a second, fresh worker that sees some evaluation batches with the tokens
after a random position of each row replaced by other real text: its logits up to that position
must equal the first worker's. The two workers share nothing (no writable folder, no memory),
so neither can tell which of its batches are probes.

Exit codes: 0 scored; 2 not prepared or data changed since prepare; 3 not causal; 5 not finite;
1 the model could not be scored (the worker failed).
"""

import argparse
import importlib.abc
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE_BATCHES = 2        # evaluation batches the second worker sees cut and spliced
DEVICE = "cpu"           # where the loss is computed: CUDA when there is one (set in score())


def _load_prepare():
    """prepare.py from beside this file, by path (this process runs with -I: no folder on sys.path)."""
    spec = importlib.util.spec_from_file_location("prepare", os.path.join(HERE, "prepare.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["prepare"] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------
# The trusted half
# ---------------------------------------------------------------------------

class Worker:
    """One model worker: a subprocess speaking a line protocol, logits through a file."""

    def __init__(self, model_path, scratch, profile_name):
        self.scratch = scratch
        self.buffer = os.path.join(scratch, "logits.bin")
        argv = [sys.executable, "-I", os.path.abspath(__file__), "--worker", os.path.abspath(model_path),
                "--buffer", self.buffer, "--profile", profile_name]
        prefix = json.loads(os.environ.get("AUTORESEARCH_WALLS") or "[]")
        argv = [a.replace("{scratch}", scratch) for a in prefix] + argv
        env = {k: v for k, v in os.environ.items() if k != "AUTORESEARCH_WALLS"}
        env.update(HOME=scratch, TMPDIR=scratch, XDG_CACHE_HOME=scratch)
        self.proc = subprocess.Popen(argv, cwd=os.getcwd(), env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=None)

    def logits(self, x, vocab):
        """Send one (B, T) int64 batch, get (B, T, V) float32 logits back (a copy)."""
        import numpy as np
        data = np.ascontiguousarray(x.numpy(), dtype=np.int64)
        self.proc.stdin.write(f"x {data.shape[0]} {data.shape[1]}\n".encode() + data.tobytes())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline(200).decode("ascii", "replace").split()
        if len(line) != 3 or line[0] != "ok" or not line[1].isdigit() or line[2] not in ("float32", "bfloat16"):
            raise WorkerFailed(" ".join(line) or f"the model worker exited ({self.proc.wait()})")
        V = int(line[1])
        if not vocab <= V <= 2 * vocab + 4096:
            raise WorkerFailed(f"the model returned logits of width {V}, expected at least the vocabulary ({vocab})")
        B, T = data.shape
        want = B * T * V
        raw = np.fromfile(self.buffer, dtype=np.float32 if line[2] == "float32" else np.int16, count=want)
        if raw.size != want:     # (a copy: what the worker writes later cannot change it)
            raise WorkerFailed(f"the model worker wrote {raw.size} logits, expected {want}")
        import torch
        logits = torch.from_numpy(raw).view(B, T, V)
        if line[2] == "bfloat16":   # bf16 logits (autocast) travel as they are: half the bytes, nothing lost
            logits = logits.view(torch.bfloat16)
        return logits.to(DEVICE).float()

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class WorkerFailed(Exception):
    pass


def score(prepare, model_path, split="val"):
    global DEVICE
    import torch
    DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
    profile = prepare.get_profile()
    if not os.path.exists(model_path):
        print(f"score: no saved model at {model_path}", file=sys.stderr)
        return 2
    digest = prepare.verify_files(split)          # raises PrepareError when a file changed since prepare
    tokenizer = prepare.Tokenizer.load()
    vocab = tokenizer.get_vocab_size()
    token_bytes = prepare.get_token_bytes(DEVICE).double()
    B, T = profile.eval_batch_size, profile.max_seq_len
    loader = prepare.make_dataloader(tokenizer, B, T, split, "cpu")
    steps = max(1, profile.eval_tokens // (B * T))
    batches = [next(loader) for _ in range(steps)]

    # the probes: rows of some batches, cut at a random position, the rest replaced by another row
    rng = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little"))
    chosen = torch.randperm(steps, generator=rng)[:min(PROBE_BATCHES, steps)].tolist()
    probes = {}
    for k in chosen:
        x = batches[k][0]
        donor = batches[(k + 1) % steps][0] if steps > 1 else x.roll(1, dims=0)
        cut = torch.randint(T // 4, T - 1, (B,), generator=rng)
        spliced = x.clone()
        for r in range(B):
            spliced[r, cut[r] + 1:] = donor[r, cut[r] + 1:]
        probes[k] = (spliced, cut)
    columns = torch.randint(0, vocab, (16,), generator=rng)   # compared besides the target and the normaliser

    base = os.environ.get("AUTORESEARCH_SCRATCH") or None
    dirs = [tempfile.mkdtemp(prefix="score-", dir=base) for _ in range(2)]
    main = probe = None
    try:
        main = Worker(model_path, dirs[0], profile.name)
        probe = Worker(model_path, dirs[1], profile.name)   # starts (imports, loads) beside the first
        total_nats = total_bytes = counted = 0.0
        seen = {}
        for k, (x, y) in enumerate(batches):
            logits = main.logits(x, vocab)
            y = y.to(DEVICE)
            logp = torch.log_softmax(logits, dim=-1)
            nll = -torch.gather(logp, -1, y.unsqueeze(-1)).squeeze(-1).double()
            nbytes = token_bytes[y]
            mask = nbytes > 0
            total_nats += torch.where(mask, nll, torch.zeros_like(nll)).sum().item()
            total_bytes += nbytes.sum().item()
            counted += mask.sum().item()
            if k in probes:
                seen[k] = _fingerprint(logits, y, columns)
            del logits, logp
        for k, (spliced, cut) in probes.items():
            other = _fingerprint(probe.logits(spliced, vocab), batches[k][1].to(DEVICE), columns)
            mine = seen[k]
            for r in range(B):
                a, b = mine[r, :cut[r] + 1], other[r, :cut[r] + 1]
                tol = 1e-4 * (1.0 + a.abs().max().item()) if prepare.get_device().type != "cuda" else \
                    2e-2 * (1.0 + a.abs().max().item())
                if not torch.isfinite(a).all() or (a - b).abs().max().item() > tol:
                    print(f"score: model is not causal: the logits up to position {int(cut[r])} of a row changed "
                          f"when only later tokens did", file=sys.stderr)
                    return 3
    except WorkerFailed as e:
        print(f"score: the model could not be scored: {e}", file=sys.stderr)
        return 1
    finally:
        for w in (main, probe):
            if w is not None:
                w.close()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    val_bpb = total_nats / (math.log(2) * total_bytes) if total_bytes else float("nan")
    if not math.isfinite(val_bpb):
        print(f"score: val_bpb is not finite ({val_bpb})", file=sys.stderr)
        return 5
    print("---")
    print(f"val_bpb:          {val_bpb:.6f}")
    print(f"eval_tokens:      {int(counted)}")
    print(f"data_sha256:      {digest}")
    return 0


def _fingerprint(logits, y, columns):
    """Per position: the normaliser, the target's logit and 16 fixed columns, as float64."""
    import torch
    lse = torch.logsumexp(logits.double(), dim=-1, keepdim=True)
    tgt = torch.gather(logits, -1, y.unsqueeze(-1)).double()
    return torch.cat([lse, tgt, logits[..., columns.to(logits.device)].double()], dim=-1).cpu()


# ---------------------------------------------------------------------------
# The untrusted half: runs train.py's code (in the sandbox, when the tool has one)
# ---------------------------------------------------------------------------

class _Workspace(importlib.abc.MetaPathFinder):
    """Imports from the working folder only the harness' own modules (prepare, train): nothing
    else there (a json.py, a torch.pyc) can shadow a real module."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name in self.names and os.path.isfile(os.path.join(os.getcwd(), name + ".py")):
            return importlib.util.spec_from_file_location(name, os.path.join(os.getcwd(), name + ".py"))
        return None


def worker(model_path, buffer, profile_name):
    channel = os.fdopen(os.dup(1), "wb", buffering=0)    # the protocol; the model's prints go to stderr
    os.dup2(2, 1)
    names = os.environ.get("AUTORESEARCH_MODULES", "prepare,train").split(",")
    sys.meta_path.insert(0, _Workspace([n.strip() for n in names if n.strip()]))
    import numpy as np
    import torch
    import train
    prepare = sys.modules["prepare"]
    ckpt = torch.load(model_path, map_location="cpu", weights_only=True)
    if ckpt.get("profile") != profile_name:
        channel.write(f"error model trained with profile {ckpt.get('profile')!r}, scoring {profile_name!r}\n".encode())
        return 1
    config = getattr(train, ckpt.get("config_class", "GPTConfig"))(**ckpt["config"])
    model = getattr(train, ckpt.get("model_class", "GPT"))(config)
    model.load_state_dict(ckpt["state_dict"], strict=True)
    device = prepare.get_device()
    model.to(device).eval()
    stdin = sys.stdin.buffer
    while True:
        head = stdin.readline(100).split()
        if not head:
            return 0
        B, T = int(head[1]), int(head[2])
        x = torch.from_numpy(np.frombuffer(stdin.read(B * T * 8), dtype=np.int64).reshape(B, T).copy())
        with torch.no_grad(), prepare.autocast_context(device):
            logits = model(x.to(device))
        if logits.dtype != torch.bfloat16:
            logits = logits.float()
        if logits.dim() != 3 or tuple(logits.shape[:2]) != (B, T):
            channel.write(f"error model returned logits of shape {tuple(logits.shape)}, expected ({B}, {T}, V)\n".encode())
            return 1
        host = logits.contiguous().cpu()
        with open(buffer, "wb") as f:
            f.write((host.view(torch.int16) if host.dtype == torch.bfloat16 else host).numpy().tobytes())
        channel.write(f"ok {logits.shape[2]} {str(host.dtype).split('.')[-1]}\n".encode())


def main(argv=None):
    parser = argparse.ArgumentParser(description="Score a saved model (the protected evaluator).")
    parser.add_argument("model", nargs="?", help="the saved model (train.py writes it to AUTORESEARCH_MODEL_OUT)")
    parser.add_argument("--split", default="val", choices=["val", "holdout"],
                        help="the split to score (holdout: the hidden one; still printed as val_bpb)")
    parser.add_argument("--worker", metavar="MODEL", help=argparse.SUPPRESS)
    parser.add_argument("--buffer", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.buffer, args.profile)
    if not args.model:
        parser.error("name the saved model to score")
    prepare = _load_prepare()
    try:
        return score(prepare, args.model, args.split)
    except prepare.PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
