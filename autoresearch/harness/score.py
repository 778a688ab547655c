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
    """One model worker: a subprocess speaking a line protocol, its answers through a file."""

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
        self.width = None

    def _ask(self, head, payload, vocab):
        """Send a command, read `ok V DTYPE`, return (V, dtype)."""
        self.proc.stdin.write(head.encode() + payload)
        self.proc.stdin.flush()
        line = self.proc.stdout.readline(200).decode("ascii", "replace").split()
        if len(line) != 3 or line[0] != "ok" or not line[1].isdigit() or line[2] not in ("float32", "bfloat16"):
            raise WorkerFailed(" ".join(line) or f"the model worker exited ({self.proc.wait()})")
        V = int(line[1])
        if not vocab <= V <= 2 * vocab + 4096 or (self.width is not None and V != self.width):
            raise WorkerFailed(f"the model returned logits of width {V}, expected at least the vocabulary ({vocab})")
        self.width = V
        return V, line[2]

    def _read(self, count, dtype):
        import numpy as np
        import torch
        raw = np.fromfile(self.buffer, dtype=np.float32 if dtype == "float32" else np.int16, count=count)
        if raw.size != count:     # (a copy: what the worker writes later cannot change it)
            raise WorkerFailed(f"the model worker wrote {raw.size} values, expected {count}")
        out = torch.from_numpy(raw)
        if dtype == "bfloat16":   # bf16 logits (autocast) travel as they are: half the bytes, nothing lost
            out = out.view(torch.bfloat16)
        return out.to(DEVICE).float()

    def logits(self, x, vocab):
        """full: one (B, T) batch in, its (B, T, V) logits back."""
        import numpy as np
        B, T = x.shape
        V, dtype = self._ask(f"x {B} {T} full\n", np.ascontiguousarray(x.numpy(), dtype=np.int64).tobytes(), vocab)
        return self._read(B * T * V, dtype).view(B, T, V)

    def summary(self, x, vocab):
        """compact: one batch in; back: each position's log-normaliser (B, T), the logit of the token
        that follows it in x (B, T-1), and the whole logits of the last position (B, V), whose token the
        worker never sees. The worker keeps the batch's logits for vectors()."""
        import numpy as np
        B, T = x.shape
        V, _ = self._ask(f"x {B} {T} compact\n", np.ascontiguousarray(x.numpy(), dtype=np.int64).tobytes(), vocab)
        flat = self._read(B * T + B * (T - 1) + B * V, "float32")
        return flat[:B * T].view(B, T), flat[B * T:B * T + B * (T - 1)].view(B, T - 1), flat[-B * V:].view(B, V)

    def vectors(self, rows, cols, vocab):
        """The whole logits at (row, position) pairs of the last batch (N, V): asked after its summary."""
        import numpy as np
        pairs = np.stack([rows.cpu().numpy(), cols.cpu().numpy()], axis=1).astype(np.int64)
        V, dtype = self._ask(f"v {len(pairs)}\n", pairs.tobytes(), vocab)
        return self._read(len(pairs) * V, dtype).view(len(pairs), V)

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


class NotCausal(Exception):
    pass


def score(prepare, model_path, split="val"):
    global DEVICE
    import torch
    DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
    # the compact answer, checked at random positions (see _compact): whole logits are GBs a batch on
    # CUDA, and cost 20 s more per trial on a 2-core CPU (benchmarks/gpu_scorer.py); `full` sends every
    # logit through a file and computes each log-softmax here (exact, every value seen)
    compact = os.environ.get("AUTORESEARCH_SCORE_TRANSFER", "compact") != "full"
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
    rows = [row for bx, _ in batches for row in bx]      # donors: real text from anywhere in the evaluation
    for k in chosen:
        x = batches[k][0]
        cut = torch.randint(T // 4, T - 1, (B,), generator=rng)
        spliced = x.clone()
        for r in range(B):
            c = int(cut[r])
            # a donor whose token right after the cut differs (a small split repeats its rows), else one token changed
            start = int(torch.randint(0, len(rows), (1,), generator=rng))
            donor = next((d for i in range(len(rows)) for d in [rows[(start + i) % len(rows)]]
                          if d[c + 1] != x[r, c + 1]), None)
            if donor is not None:
                spliced[r, c + 1:] = donor[c + 1:]
            else:
                spliced[r, c + 1] = (x[r, c + 1] + 1) % vocab
        probes[k] = (spliced, cut)
    columns = torch.randint(0, vocab, (16,), generator=rng)   # compared besides the target and the normaliser
    tol = 2e-2 if DEVICE == "cuda" else 1e-4                   # bf16 on CUDA

    base = os.environ.get("AUTORESEARCH_SCRATCH") or None
    dirs = [tempfile.mkdtemp(prefix="score-", dir=base) for _ in range(2)]
    main = probe = None
    try:
        main = Worker(model_path, dirs[0], profile.name)
        probe = Worker(model_path, dirs[1], profile.name)   # starts (imports, loads) beside the first
        total_nats = total_bytes = counted = 0.0
        seen = {}
        for k, (x, y) in enumerate(batches):
            y = y.to(DEVICE)
            if compact:
                nll, seen[k] = _compact(main, x, y, vocab, rng, probes.get(k, (None, None))[1], tol)
            else:
                logits = main.logits(x, vocab)
                nll = -torch.gather(torch.log_softmax(logits, dim=-1), -1, y.unsqueeze(-1)).squeeze(-1).double()
                if k in probes:
                    seen[k] = _fingerprint(logits, y, columns)
                del logits
            nbytes = token_bytes[y]
            mask = nbytes > 0
            total_nats += torch.where(mask, nll, torch.zeros_like(nll)).sum().item()
            total_bytes += nbytes.sum().item()
            counted += mask.sum().item()
        for k, (spliced, cut) in probes.items():
            y = batches[k][1].to(DEVICE)
            if compact:
                _, other = _compact(probe, spliced, y, vocab, rng, cut, tol)
            else:
                other = _fingerprint(probe.logits(spliced, vocab), y, columns)
            _same_before_cut(seen[k], other, cut, tol, compact)
    except WorkerFailed as e:
        print(f"score: the model could not be scored: {e}", file=sys.stderr)
        return 1
    except NotCausal as e:
        print(f"score: model is not causal: {e}", file=sys.stderr)
        return 3
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


SPOT_CHECKS = 64         # compact answers: positions per batch whose whole logits are asked for afterwards


def _compact(worker, x, y, vocab, rng, cut, tol):
    """Per-token losses from a compact answer, verified: at random positions (and at each row's cut, for
    a probe batch) the whole logits are asked for after the answer, and the answer must be their
    log-normaliser and target logit. Returns (nll (B, T), what a probe compares)."""
    import torch
    B, T = x.shape
    lse, tgt, last = worker.summary(x, vocab)
    rows = torch.randint(0, B, (SPOT_CHECKS,), generator=rng)
    cols = torch.randint(0, T - 1, (SPOT_CHECKS,), generator=rng)
    if cut is not None:       # the cut positions, among the random ones: the worker cannot tell them apart
        rows, cols = torch.cat([rows, torch.arange(B)]), torch.cat([cols, cut])
    vec = worker.vectors(rows, cols, vocab)
    rows_d, cols_d = rows.to(lse.device), cols.to(lse.device)
    follows = x[:, 1:].to(lse.device)          # the token after each position but the last, in what was sent
    want_lse = torch.logsumexp(vec.double(), dim=-1)
    want_tgt = vec.double().gather(-1, follows[rows_d, cols_d].unsqueeze(-1)).squeeze(-1)
    bound = tol * (1.0 + want_lse.abs())
    if not torch.isfinite(lse).all() or not torch.isfinite(tgt).all() or \
            ((want_lse - lse[rows_d, cols_d].double()).abs() > bound).any() or \
            ((want_tgt - tgt[rows_d, cols_d].double()).abs() > bound).any() or \
            (tgt.double() > lse[:, :-1].double() + tol * (1.0 + lse[:, :-1].double().abs())).any():
        raise WorkerFailed("its answer does not match its own logits (log-normaliser or target logit)")
    nll = torch.empty((B, T), dtype=torch.float64, device=lse.device)
    nll[:, :-1] = lse[:, :-1].double() - tgt.double()
    last_logp = torch.log_softmax(last.double(), dim=-1)
    nll[:, -1] = -last_logp.gather(-1, y[:, -1:]).squeeze(-1)
    at_cut = vec[-B:] if cut is not None else None
    return nll, (lse, tgt, at_cut)


def _same_before_cut(mine, other, cut, tol, compact):
    """The probe's answers up to each row's cut must equal the evaluation's: else the model looked ahead."""
    import torch
    for r in range(len(cut)):
        c = int(cut[r])
        if compact:
            (lse_a, tgt_a, vec_a), (lse_b, tgt_b, vec_b) = mine, other
            pairs = [(lse_a[r, :c + 1], lse_b[r, :c + 1]), (tgt_a[r, :c], tgt_b[r, :c]), (vec_a[r], vec_b[r])]
        else:
            pairs = [(mine[r, :c + 1], other[r, :c + 1])]
        for a, b in pairs:
            a, b = a.double(), b.double().to(a.device)
            if not torch.isfinite(a).all() or (a - b).abs().max().item() > tol * (1.0 + a.abs().max().item()):
                raise NotCausal(f"the logits up to position {c} of a row changed when only later tokens did")


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
    last = None
    while True:
        head = stdin.readline(100).decode("ascii", "replace").split()
        if not head:
            return 0
        if head[0] == "v":           # whole logits at (row, position) pairs of the last batch
            n = int(head[1])
            pairs = torch.from_numpy(np.frombuffer(stdin.read(n * 16), dtype=np.int64).reshape(n, 2).copy())
            out = last[pairs[:, 0].to(last.device), pairs[:, 1].to(last.device)].float()
            _write(buffer, out)
            channel.write(f"ok {out.shape[-1]} float32\n".encode())
            continue
        B, T, mode = int(head[1]), int(head[2]), head[3]
        x = torch.from_numpy(np.frombuffer(stdin.read(B * T * 8), dtype=np.int64).reshape(B, T).copy())
        with torch.no_grad(), prepare.autocast_context(device):
            logits = model(x.to(device))
        if logits.dim() != 3 or tuple(logits.shape[:2]) != (B, T):
            channel.write(f"error model returned logits of shape {tuple(logits.shape)}, expected ({B}, {T}, V)\n".encode())
            return 1
        if logits.dtype != torch.bfloat16:
            logits = logits.float()
        if mode == "full":
            _write(buffer, logits)
        else:
            last = logits
            f = logits.float()
            lse = torch.logsumexp(f, dim=-1)
            tgt = f[:, :-1].gather(-1, x[:, 1:].to(f.device).unsqueeze(-1)).squeeze(-1)
            _write(buffer, torch.cat([lse.reshape(-1), tgt.reshape(-1), f[:, -1].reshape(-1)]))
        channel.write(f"ok {logits.shape[2]} {'float32' if mode != 'full' else str(logits.dtype).split('.')[-1]}\n".encode())


def _write(path, tensor):
    import torch
    host = tensor.contiguous().cpu()
    with open(path, "wb") as f:
        f.write(memoryview((host.view(torch.int16) if host.dtype == torch.bfloat16 else host).numpy()))


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
