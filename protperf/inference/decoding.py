"""Token-by-token forward of a causal :class:`ProteinLanguageModel` with per-layer caches.

Performer layers carry the recurrent FAVOR+ state (constant size per token), exact layers a
KV cache, identity layers nothing. Every step gives the same next-token logits as the full
causal forward over the whole prefix (tested to rounding).

This module is the ONE place that reaches into the attention layer's surface for decoding
(``project``, ``out_proj``, ``config``, the ``feature_projection`` buffer) and into the
rotary embedding's angle formula; re-point it here if the attention package changes.
"""

from __future__ import annotations

import torch

from protperf.attention.recurrent import (
    KVCache,
    RecurrentState,
    empty_kv_cache,
    empty_recurrent_state,
    kv_cache_step,
    recurrent_favor_step,
)
from protperf.model.rotary import apply_rotary, rotary_angles
from protperf.model.transformer import ProteinLanguageModel

LayerCache = RecurrentState | KVCache | None


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Performer math runs in float32 (float64 stays float64), as in training."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _rotary_at(rotary, position: int, device):
    """A (q, k) -> (q, k) rotation for one position, the same angles as the full forward."""
    if rotary is None:
        return None
    inv_freq = rotary_angles(2, rotary.head_dim, rotary.base, device=device)[1]
    angles = (torch.tensor(float(position), device=device) * inv_freq)[None]  # (1, Dh/2)
    return lambda q, k: (apply_rotary(q, angles), apply_rotary(k, angles))


def _new_cache(attn, batch: int, capacity: int, dtype, device) -> LayerCache:
    kind = attn.config.kind
    if kind == "exact":
        return empty_kv_cache(batch, attn.num_heads, capacity, attn.head_dim, dtype, device)
    if kind in ("favor_softmax", "favor_relu"):
        projection = getattr(attn, "feature_projection", None)
        m = attn.head_dim if projection is None else projection.shape[0]
        return empty_recurrent_state(
            batch, attn.num_heads, m, attn.head_dim, _work_dtype(dtype), device)
    return None  # identity


def _attention_step(attn, x: torch.Tensor, cache: LayerCache, rotary) -> torch.Tensor:
    """One layer's attention for the newest token: x (B, 1, D) -> (B, 1, D)."""
    b = x.shape[0]
    q, k, v = attn.project(x, rotary)  # (B, H, 1, Dh)
    cfg = attn.config
    if cfg.kind == "exact":
        out, _ = kv_cache_step(q, k, v, cache)
    elif cfg.kind == "identity":
        out = v
    else:
        kernel = "softmax" if cfg.kind == "favor_softmax" else "relu"
        projection = getattr(attn, "feature_projection", None)
        out, _ = recurrent_favor_step(q, k, v, cache, projection, kernel, cfg.relu_eps)
        out = out.to(v.dtype)
    return attn.out_proj(out.transpose(1, 2).reshape(b, 1, attn.dim))


class IncrementalDecoder:
    """Feeds one token per sequence at a time; ``step`` returns next-token logits.

    Args:
        model: a causal model in eval mode.
        batch_size: B, the number of sequences decoded together.
        capacity: the most tokens that will be fed (sizes the exact KV caches; checked
            against a learned positional table).
    """

    def __init__(self, model: ProteinLanguageModel, batch_size: int, capacity: int) -> None:
        if not model.causal:
            raise ValueError("incremental decoding needs a causal (task.objective=clm) model")
        self.model, self.position = model, 0
        self.capacity = capacity
        weight = model.token_embedding.weight
        self.caches = [
            _new_cache(block.attn, batch_size, capacity, weight.dtype, weight.device)
            for block in model.blocks
        ]

    @torch.no_grad()
    def step(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token_ids: (B,) int64 at the next position -> logits (B, vocab) for the one after."""
        if self.position >= self.capacity:
            raise ValueError(f"decoder capacity of {self.capacity} tokens exceeded")
        model = self.model
        x = model.embed(token_ids[:, None], start=self.position)
        rotary = _rotary_at(model.rotary, self.position, x.device)
        for block, cache in zip(model.blocks, self.caches, strict=True):
            x = x + _attention_step(block.attn, block.attn_norm(x), cache, rotary)
            x = x + block.ffn(block.ffn_norm(x))
        self.position += 1
        return model.lm_head(model.final_norm(x))[:, 0]

    def state_bytes(self) -> int:
        """Bytes held by the caches (for benchmarks)."""
        total = 0
        for cache in self.caches:
            if isinstance(cache, RecurrentState):
                total += cache.sums.numel() * cache.sums.element_size()
            elif isinstance(cache, KVCache):
                total += 2 * cache.keys.numel() * cache.keys.element_size()
        return total


class FullForwardDecoder:
    """Reference decoder with the same interface: reruns the full causal forward on the whole
    prefix at every step (O(t) per token; for tests and benchmarks)."""

    def __init__(self, model: ProteinLanguageModel, batch_size: int, capacity: int) -> None:
        self.model, self.capacity = model, capacity
        self.tokens = torch.empty(batch_size, 0, dtype=torch.long,
                                  device=model.token_embedding.weight.device)

    @torch.no_grad()
    def step(self, token_ids: torch.Tensor) -> torch.Tensor:
        self.tokens = torch.cat([self.tokens, token_ids[:, None]], dim=1)
        return self.model(self.tokens)[:, -1]
