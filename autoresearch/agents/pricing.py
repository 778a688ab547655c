"""Pricing: an agent's tokens, by kind, turned into US dollars with the `[prices]` table.

Agents report tokens by kind in `Proposal.extra["tokens"]`:

    {"input": uncached input, "cached_input": read from a prompt cache,
     "cache_write": written to a prompt cache (Anthropic), "output": output incl. reasoning}

(`Proposal.tokens_in` is the sum of the three input kinds, `tokens_out` the output.)
`[prices]` in autoresearch.toml gives USD per million tokens per model, as a list or a table:

    [prices]
    "gpt-5.5" = [1.25, 10.0, 0.125]              # input, output, cached input (optional)
    "claude-sonnet-4-5" = { input = 3.0, output = 15.0, cached_input = 0.30, cache_write = 3.75 }

A missing cached-input price charges cached tokens at the input price (never less than the
truth); a missing cache-write price charges them at the input price. A cost the agent knows
itself (claude's `total_cost_usd`) wins over the table.
"""

from __future__ import annotations

from autoresearch.errors import ConfigError

KINDS = ("input", "cached_input", "cache_write", "output")


def tokens(input: int = 0, cached_input: int = 0, cache_write: int = 0, output: int = 0) -> dict:
    return {"input": int(input or 0), "cached_input": int(cached_input or 0),
            "cache_write": int(cache_write or 0), "output": int(output or 0)}


def price_of(model: str, prices: dict) -> dict | None:
    """{input, output, cached_input, cache_write} in USD per million tokens, or None if not listed."""
    spec = (prices or {}).get(model) if model else None
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)) and len(spec) in (2, 3, 4) and all(isinstance(v, (int, float)) for v in spec):
        spec = dict(zip(("input", "output", "cached_input", "cache_write"), spec))
    if not isinstance(spec, dict) or not {"input", "output"} <= set(spec) or set(spec) - set(KINDS):
        raise ConfigError(f"[prices] {model!r} must be [input, output] or [input, output, cached_input] "
                          f"(USD per million tokens), or a table with keys {', '.join(KINDS)}")
    out = {k: float(spec[k]) for k in spec}
    out.setdefault("cached_input", out["input"])
    out.setdefault("cache_write", out["input"])
    return out


def cost(proposal, prices: dict) -> float:
    """USD of one proposal: its own cost if it knows it, else its tokens x the model's prices."""
    if proposal.cost_usd:
        return float(proposal.cost_usd)
    extra = proposal.extra or {}
    price = price_of(extra.get("model"), prices)
    if price is None:
        return 0.0
    kinds = extra.get("tokens")
    if not isinstance(kinds, dict):
        kinds = tokens(input=proposal.tokens_in, output=proposal.tokens_out)
    return sum(int(kinds.get(k) or 0) * price[k] for k in KINDS) / 1e6
