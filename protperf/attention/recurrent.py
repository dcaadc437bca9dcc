"""One-token decoding steps: recurrent FAVOR+ (constant-size state) and an exact KV cache.

Shapes: ``q, k: (B, H, 1, d)`` raw head projections of the newest token (rotary already
applied), ``v: (B, H, 1, dv)``; ``projection: (m, d)``. Every step returns ``(B, H, 1, dv)``.

Recurrent FAVOR+ keeps per (batch, head) the state S = sum_{j<=t} exp(l_j - s_t) [v_j, 1]^T
(m x (dv+1)), where l_j are key j's feature exponents and s_t the running key stabilizer
max_{j<=t} max_features(l_j): exactly the per-position stabilizer of the causal training
forward (``features.causal_key_stabilizer``), so a step reproduces the chunked algorithm's
pairs q'_t.k'_j exp(s_j - s_t) = q'_t.exp(l_j - s_t) up to rounding. A new key rescales the
state by exp(s_{t-1} - s_t) <= 1, so nothing overflows. ReLU features have no stabilizer.
Time and memory per token are O(m dv), whatever t.

The KV cache is a preallocated (B, H, capacity, d) buffer; a step attends over the first
t + 1 slots: O(t d) per token, memory growing with t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from protperf.attention.ops.features import (
    positive_features,
    query_stabilizer,
    relu_features,
    scale_for_softmax,
    softmax_feature_logits,
)
from protperf.attention.ops.linear import DENOMINATOR_FLOOR


@dataclass
class RecurrentState:
    """Running sums of one causal Performer layer.

    sums: (B, H, m, dv + 1), the last column the normalizer's key sum; key_log_scale: (B, H)
    the running stabilizer s_t (softmax kernel), or None (ReLU kernel, or before any token).
    """

    sums: torch.Tensor
    key_log_scale: torch.Tensor | None = None


def empty_recurrent_state(
    batch: int, heads: int, num_features: int, value_dim: int, dtype=torch.float32, device=None
) -> RecurrentState:
    """A zero state: (B, H, m, dv + 1) sums, no stabilizer yet."""
    sums = torch.zeros(batch, heads, num_features, value_dim + 1, dtype=dtype, device=device)
    return RecurrentState(sums)


def performer_step_features(
    q: torch.Tensor,
    k: torch.Tensor,
    projection: torch.Tensor | None,
    kernel: str,
    relu_eps: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Features of one token: q' (B, H, 1, m), unstabilized key exponents or features, s.

    Softmax: returns (q', key exponents l = W k - |k|^2/2 (B, H, 1, m), per-key max (B, H));
    the query drops its own row max (a constant of the query's ratio). ReLU: (q', k', None).
    q, k are scaled by d^-1/4 first, as in training.
    """
    q, k = scale_for_softmax(q), scale_for_softmax(k)
    if kernel == "softmax":
        q_logits = q @ projection.transpose(0, 1)
        q_prime = positive_features(q_logits, query_stabilizer(q_logits))
        k_logits = softmax_feature_logits(k, projection)
        return q_prime, k_logits, k_logits.amax(dim=-1).squeeze(-1)
    if kernel == "relu":
        return relu_features(q, projection, relu_eps), relu_features(k, projection, relu_eps), None
    raise ValueError(f"kernel must be 'softmax' or 'relu', got {kernel!r}")


def recurrent_favor_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    state: RecurrentState,
    projection: torch.Tensor | None,
    kernel: str,
    relu_eps: float = 1e-3,
) -> tuple[torch.Tensor, RecurrentState]:
    """Causal FAVOR+ output of the newest token and the updated state (in place).

    q, k: (B, H, 1, d); v: (B, H, 1, dv); state.sums (B, H, m, dv + 1) -> out (B, H, 1, dv).
    Computed in the state's dtype (float32, or float64 for float64 states).
    """
    dtype = state.sums.dtype
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    projection = None if projection is None else projection.to(dtype)
    q_prime, k_part, key_max = performer_step_features(q, k, projection, kernel, relu_eps)
    v_aug = torch.cat([v, v.new_ones(*v.shape[:-1], 1)], dim=-1)  # (B, H, 1, dv + 1)
    if kernel == "softmax":
        previous = state.key_log_scale
        scale = key_max if previous is None else torch.maximum(previous, key_max)
        if previous is not None:
            state.sums.mul_(torch.exp(previous - scale)[..., None, None])
        k_prime = positive_features(k_part, scale[..., None, None])
        state.key_log_scale = scale
    else:
        k_prime = k_part
    state.sums.add_(k_prime.transpose(-2, -1) @ v_aug)
    out = q_prime @ state.sums  # (B, H, 1, dv + 1)
    return out[..., :-1] / out[..., -1:].clamp_min(DENOMINATOR_FLOOR), state


@dataclass
class KVCache:
    """Keys and values of one exact-attention layer: (B, H, capacity, d) each; ``length``
    slots filled."""

    keys: torch.Tensor
    values: torch.Tensor
    length: int = 0


def empty_kv_cache(
    batch: int, heads: int, capacity: int, head_dim: int, dtype=torch.float32, device=None
) -> KVCache:
    """A preallocated cache for ``capacity`` tokens."""
    shape = (batch, heads, capacity, head_dim)
    return KVCache(torch.empty(shape, dtype=dtype, device=device),
                   torch.empty(shape, dtype=dtype, device=device))


def kv_cache_step(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: KVCache
) -> tuple[torch.Tensor, KVCache]:
    """Exact softmax attention of the newest token over itself and the cached past.

    q, k, v: (B, H, 1, d) -> out (B, H, 1, d); appends k, v to the cache (in place).
    """
    t = cache.length
    if t >= cache.keys.shape[2]:
        raise ValueError(f"KV cache is full ({cache.keys.shape[2]} tokens)")
    cache.keys[:, :, t : t + 1] = k
    cache.values[:, :, t : t + 1] = v
    cache.length = t + 1
    keys, values = cache.keys[:, :, : t + 1], cache.values[:, :, : t + 1]
    return F.scaled_dot_product_attention(q, keys, values), cache
