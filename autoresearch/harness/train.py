"""
Autoresearch pretraining script: one device, one file. This is the file agents edit.

A nanochat-style GPT (rotary embeddings, QK-norm, ReLU^2 MLP, value embeddings, logit
softcap, per-layer residual scalars) trained with Muon (2D matrices) + AdamW (embeddings,
head, scalars) for a fixed wall-clock budget, then scored in bits per byte.

Usage: python train.py    (after `python prepare.py`; the profile comes from
AUTORESEARCH_PROFILE or autoresearch.toml, the model is saved to AUTORESEARCH_MODEL_OUT,
default .autoresearch/model.pt). Everything runs under main(): importing this file only
defines the model, so score.py can rebuild it.
"""

import math
import os
import sys
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

import prepare

# ---------------------------------------------------------------------------
# Hyperparameters (edit these directly, no CLI flags needed)
# ---------------------------------------------------------------------------

# Model
DEPTH = 2  # transformer layers
MODEL_DIM = 128  # width of the residual stream, channels
HEAD_DIM = 64  # channels per attention head
MLP_RATIO = 4  # MLP hidden width / MODEL_DIM
SOFTCAP = 15.0  # logits squashed to (-SOFTCAP, SOFTCAP) with tanh

# Optimization
TOTAL_BATCH_SIZE = 4096  # tokens per optimizer step (gradient accumulation fills it)
DEVICE_BATCH_SIZE = 16  # sequences per forward/backward pass
MATRIX_LR = 0.04  # Muon learning rate for 2D matrices in the blocks
EMBEDDING_LR = 0.6  # AdamW learning rate for token and value embeddings (scaled by width)
UNEMBEDDING_LR = 0.004  # AdamW learning rate for the output head (scaled by width)
SCALAR_LR = 0.5  # AdamW learning rate for per-layer residual scalars
WEIGHT_DECAY = 0.0  # Muon weight decay, per unit learning rate
ADAM_BETA1 = 0.8  # AdamW first-moment decay
ADAM_BETA2 = 0.95  # AdamW second-moment decay
MUON_MOMENTUM = 0.95  # Muon Nesterov momentum
WARMUP_RATIO = 0.0  # fraction of the time budget spent ramping the LR up
WARMDOWN_RATIO = 0.5  # fraction of the time budget spent decaying the LR at the end
FINAL_LR_FRAC = 0.0  # LR at the end, as a fraction of the peak

# Run
COMPILE = True  # torch.compile the model (falls back to eager with a note if it fails)
STARTUP_STEPS = 1  # first steps (compilation, warm-up) not counted in the time budget
SEED = 42  # random seed for initialization


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------

@dataclass
class GPTConfig:
    sequence_len: int = 256
    vocab_size: int = 4096
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 128
    mlp_ratio: int = 4
    softcap: float = 15.0
    flash_attn3: bool = False  # use Flash Attention 3 (Hopper only) instead of PyTorch SDPA


def norm(x):
    return F.rms_norm(x, (x.size(-1),))


def has_ve(layer_idx, n_layer):
    """Value embeddings on alternating layers, the last one always included."""
    return layer_idx % 2 == (n_layer - 1) % 2


def load_flash_attention3():
    """Flash Attention 3 from the `kernels` package, offline only; None if unavailable."""
    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] != 9:
        return None
    try:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from kernels import get_kernel
        fa3 = get_kernel("varunneal/flash-attention-3").flash_attn_interface
        q = torch.randn(1, 128, 1, 128, device="cuda", dtype=torch.bfloat16)
        out = fa3.flash_attn_func(q, q, q, causal=True)
        torch.testing.assert_close((out[0] if isinstance(out, tuple) else out).float(),
                                   F.scaled_dot_product_attention(q.transpose(1, 2), q.transpose(1, 2), q.transpose(1, 2),
                                                                  is_causal=True).transpose(1, 2).float(), atol=2e-2, rtol=2e-2)
        return fa3
    except Exception:
        return None


def apply_rotary(x, cos, sin):
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, config, layer_idx, fa3=None):
        super().__init__()
        self.n_head = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.c_q = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.c_k = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.c_v = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.ve_gate_channels = min(32, config.n_embd)
        self.ve_gate = nn.Linear(self.ve_gate_channels, self.n_head, bias=False) if has_ve(layer_idx, config.n_layer) else None
        self.fa3 = fa3

    def forward(self, x, ve, cos, sin):
        B, T, C = x.shape
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_head, self.head_dim)
        if ve is not None:  # value embedding, mixed in with a learned per-head gate in (0, 2)
            gate = 2 * torch.sigmoid(self.ve_gate(x[..., :self.ve_gate_channels]))
            v = v + gate.unsqueeze(-1) * ve.view(B, T, self.n_head, self.head_dim)
        q, k = norm(apply_rotary(q, cos, sin)), norm(apply_rotary(k, cos, sin))  # QK-norm
        if self.fa3 is not None:
            y = self.fa3.flash_attn_func(q, k, v, causal=True)
            y = y[0] if isinstance(y, tuple) else y
        else:
            y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
            y = y.transpose(1, 2)
        return self.c_proj(y.contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.mlp_ratio * config.n_embd, bias=False)
        self.c_proj = nn.Linear(config.mlp_ratio * config.n_embd, config.n_embd, bias=False)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, config, layer_idx, fa3=None):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer_idx, fa3)
        self.mlp = MLP(config)

    def forward(self, x, ve, cos, sin):
        x = x + self.attn(norm(x), ve, cos, sin)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        fa3 = load_flash_attention3() if config.flash_attn3 else None
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList([Block(config, i, fa3) for i in range(config.n_layer)])
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.resid_lambdas = nn.Parameter(torch.ones(config.n_layer))  # scales the residual stream per layer
        self.x0_lambdas = nn.Parameter(torch.zeros(config.n_layer))  # mixes the input embedding back in per layer
        self.value_embeds = nn.ModuleDict({str(i): nn.Embedding(config.vocab_size, config.n_embd)
                                           for i in range(config.n_layer) if has_ve(i, config.n_layer)})
        head_dim = config.n_embd // config.n_head
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        freqs = torch.outer(torch.arange(config.sequence_len, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", freqs.cos()[None, :, None, :], persistent=False)
        self.register_buffer("sin", freqs.sin()[None, :, None, :], persistent=False)

    @torch.no_grad()
    def init_weights(self):
        s = 3 ** 0.5 * self.config.n_embd ** -0.5  # uniform bound with std 1/sqrt(n_embd)
        nn.init.normal_(self.wte.weight, std=1.0)
        nn.init.normal_(self.lm_head.weight, std=0.001)
        for block in self.blocks:
            for lin in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc):
                nn.init.uniform_(lin.weight, -s, s)
            nn.init.zeros_(block.attn.c_proj.weight)
            nn.init.zeros_(block.mlp.c_proj.weight)
            if block.attn.ve_gate is not None:
                nn.init.zeros_(block.attn.ve_gate.weight)
        for ve in self.value_embeds.values():
            nn.init.uniform_(ve.weight, -s, s)
        self.resid_lambdas.fill_(1.0)
        self.x0_lambdas.fill_(0.1)

    def forward(self, idx):
        """idx (B, T) token ids -> logits (B, T, vocab_size) in float32."""
        T = idx.size(1)
        cos, sin = self.cos[:, :T], self.sin[:, :T]
        x = x0 = norm(self.wte(idx))
        for i, block in enumerate(self.blocks):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
            x = block(x, ve, cos, sin)
        logits = self.lm_head(norm(x)).float()
        return self.config.softcap * torch.tanh(logits / self.config.softcap)


# ---------------------------------------------------------------------------
# Optimizer: Muon for 2D block matrices, AdamW for everything else
# ---------------------------------------------------------------------------

def orthogonalize(G, steps=5):
    """Newton-Schulz iteration (quintic) approximating U V^T of G = U S V^T."""
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G.bfloat16() if G.is_cuda else G.float()
    transposed = X.size(-2) > X.size(-1)
    if transposed:
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    return (X.mT if transposed else X).to(G.dtype)


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr, momentum, weight_decay):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buf.lerp_(p.grad, 1 - group["momentum"])
                g = p.grad.lerp(buf, group["momentum"])  # Nesterov
                update = orthogonalize(g) * max(1.0, p.size(-2) / p.size(-1)) ** 0.5
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update, alpha=-group["lr"])


def make_optimizers(model):
    scale = (model.config.n_embd / 768) ** -0.5  # AdamW LRs were tuned at width 768
    matrices = [p for p in model.blocks.parameters() if p.dim() == 2]
    embeds = [model.wte.weight] + [ve.weight for ve in model.value_embeds.values()]
    groups = [
        dict(params=embeds, lr=EMBEDDING_LR * scale),
        dict(params=[model.lm_head.weight], lr=UNEMBEDDING_LR * scale),
        dict(params=[model.resid_lambdas], lr=SCALAR_LR * 0.01),
        dict(params=[model.x0_lambdas], lr=SCALAR_LR),
    ]
    adamw = torch.optim.AdamW(groups, betas=(ADAM_BETA1, ADAM_BETA2), eps=1e-10, weight_decay=0.0)
    muon = Muon(matrices, lr=MATRIX_LR, momentum=MUON_MOMENTUM, weight_decay=WEIGHT_DECAY)
    for opt in (adamw, muon):
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    return [adamw, muon]


def lr_multiplier(progress):
    """progress = training seconds so far / TIME_BUDGET."""
    if progress < WARMUP_RATIO:
        return progress / WARMUP_RATIO
    if progress < 1.0 - WARMDOWN_RATIO:
        return 1.0
    cooldown = (1.0 - progress) / WARMDOWN_RATIO
    return cooldown + (1.0 - cooldown) * FINAL_LR_FRAC


# ---------------------------------------------------------------------------
# Reporting helpers
# ---------------------------------------------------------------------------

def peak_flops(device):
    """bf16 dense peak of known accelerators; 0 (MFU reported as 0.00) for anything else."""
    if device.type != "cuda":
        return 0.0
    name = torch.cuda.get_device_name(device)
    for key, flops in (("H100", 989.5e12), ("H200", 989.5e12), ("A100", 312e12)):
        if key in name:
            return flops
    return 0.0


def peak_memory_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 1024 / 1024
    if device.type == "mps":
        return torch.mps.driver_allocated_memory() / 1024 / 1024
    import resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux, bytes on macOS
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

def main():
    t_start = time.time()
    torch.manual_seed(prepare.run_seed(SEED))  # SEED, plus this run's offset (see prepare.py)
    profile = prepare.get_profile()
    device = prepare.get_device(profile)
    T, budget = profile.max_seq_len, profile.time_budget
    tokenizer = prepare.Tokenizer.load()
    train_loader = prepare.make_dataloader(tokenizer, DEVICE_BATCH_SIZE, T, "train", device)
    print(f"Profile: {profile.name} | device: {device} | time budget: {budget}s", flush=True)

    config = GPTConfig(sequence_len=T, vocab_size=tokenizer.get_vocab_size(), n_layer=DEPTH,
                       n_head=max(1, MODEL_DIM // HEAD_DIM), n_embd=MODEL_DIM, mlp_ratio=MLP_RATIO, softcap=SOFTCAP,
                       flash_attn3=load_flash_attention3() is not None)
    model = GPT(config).to(device)
    model.init_weights()
    num_params = sum(p.numel() for p in model.parameters())
    embed_params = model.wte.weight.numel() + sum(ve.weight.numel() for ve in model.value_embeds.values())
    flops_per_token = 6 * (num_params - embed_params) + 12 * DEPTH * MODEL_DIM * T
    print(f"Parameters: {num_params / 1e6:.2f}M | attention: {'FA3' if config.flash_attn3 else 'SDPA'}", flush=True)

    tokens_per_pass = DEVICE_BATCH_SIZE * T
    assert TOTAL_BATCH_SIZE % tokens_per_pass == 0, "TOTAL_BATCH_SIZE must be a multiple of DEVICE_BATCH_SIZE * seq len"
    grad_accum = TOTAL_BATCH_SIZE // tokens_per_pass
    optimizers = make_optimizers(model)
    def train_loss(x, y):  # compiled with the model, so the (B, T, V) logits can be fused away
        with prepare.autocast_context(device):
            logits = model(x)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
    loss_fn = torch.compile(train_loss) if COMPILE else train_loss

    step, training_time, smooth_loss, tenth = 0, 0.0, 0.0, 1
    while True:
        t0 = time.time()
        for _ in range(grad_accum):
            x, y = next(train_loader)
            try:
                loss = loss_fn(x, y)
            except Exception as e:  # compilation failed: carry on eagerly
                if loss_fn is train_loss:
                    raise
                print(f"note: torch.compile failed ({type(e).__name__}: {e}); running eager", flush=True)
                loss_fn = train_loss
                loss = loss_fn(x, y)
            (loss / grad_accum).backward()
        progress = min(training_time / budget, 1.0)
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * lr_multiplier(progress)
            opt.step()
        model.zero_grad(set_to_none=True)
        loss_value = loss.item()  # also waits for the device, so dt is real
        if not math.isfinite(loss_value) or loss_value > 100:
            print(f"FAIL: training diverged at step {step} (loss {loss_value})", flush=True)
            sys.exit(1)
        dt = time.time() - t0
        if step >= STARTUP_STEPS:  # compilation and warm-up steps do not count
            training_time += dt
        smooth_loss = 0.9 * smooth_loss + 0.1 * loss_value
        debiased = smooth_loss / (1 - 0.9 ** (step + 1))
        tok_per_sec = TOTAL_BATCH_SIZE / dt
        mfu = 100 * flops_per_token * tok_per_sec / peak_flops(device) if peak_flops(device) else 0.0
        print(f"step {step:05d} ({100 * progress:.1f}%) | loss: {debiased:.6f} | lrm: {lr_multiplier(progress):.2f} | "
              f"dt: {dt * 1000:.0f}ms | tok/sec: {tok_per_sec:,.0f} | mfu: {mfu:.1f}% | "
              f"remaining: {max(0.0, budget - training_time):.0f}s", flush=True)
        while tenth < 10 and training_time >= tenth * budget / 10:  # the curve, for the tool's pruning
            print(f"progress: {tenth / 10:.2f} loss: {debiased:.6f}", flush=True)
            tenth += 1
        step += 1
        if step > STARTUP_STEPS and training_time >= budget:
            break

    model.eval()
    # Under autoresearch (AUTORESEARCH_RESCORE=1) the protected evaluator scores the saved model in
    # its own process, so evaluating here too would only cost time; run by hand, it evaluates here.
    rescored = os.environ.get("AUTORESEARCH_RESCORE") == "1"
    val_bpb = None if rescored else prepare.evaluate_bpb(model, device)[0]  # eager: the scorer's numbers
    out = os.environ.get("AUTORESEARCH_MODEL_OUT", os.path.join(".autoresearch", "model.pt"))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torch.save({"config": asdict(config), "state_dict": model.state_dict(), "profile": profile.name,
                "model_class": "GPT", "config_class": "GPTConfig"}, out + ".tmp")
    os.replace(out + ".tmp", out)

    counted_steps = max(1, step - STARTUP_STEPS)
    mfu = 100 * flops_per_token * TOTAL_BATCH_SIZE * counted_steps / training_time / peak_flops(device) if peak_flops(device) else 0.0
    print("---")
    if val_bpb is not None:
        print(f"val_bpb:          {val_bpb:.6f}")
    print(f"training_seconds: {training_time:.1f}")
    print(f"total_seconds:    {time.time() - t_start:.1f}")
    print(f"peak_vram_mb:     {peak_memory_mb(device):.1f}")
    print(f"mfu_percent:      {mfu:.2f}")
    print(f"total_tokens_M:   {step * TOTAL_BATCH_SIZE / 1e6:.1f}")
    print(f"num_steps:        {step}")
    print(f"num_params_M:     {num_params / 1e6:.1f}")
    print(f"depth:            {DEPTH}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except prepare.PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
