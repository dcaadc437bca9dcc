"""One-token decoding steps: recurrent FAVOR+ (constant-size state) and an exact KV cache.

Shapes: ``q_prime, k_prime: (B, H, 1, m)`` features of the newest token (from
``feature_maps.performer_feature_maps`` with causal keys), ``key_log_scale: (B, H, 1)`` its
key's own stabilizer (softmax) or None (ReLU); ``q, k, v: (B, H, 1, d)`` raw heads (rotary
already applied). Every step returns ``(B, H, 1, dv)``.

Recurrent FAVOR+ keeps per (batch, head) the state S = sum_{j<=t} exp(l_j - s_t) [v_j, 1]^T
(m x (dv+1)), where l_j are key j's feature exponents and s_t the running key stabilizer
max_{j<=t} max_features(l_j): exactly the per-position stabilizer of the causal training
forward (``features.causal_key_stabilizer``), so a step reproduces the chunked algorithm's
pairs q'_t.k'_j exp(s_j - s_t) up to rounding. A new key rescales the state by
exp(s_{t-1} - s_t) <= 1, so nothing overflows. ReLU features have no stabilizer.
Time and memory per token are O(m dv), whatever t.

The KV cache is a preallocated (B, H, capacity, d) buffer; a step attends over the first
t + 1 slots: O(t d) per token, memory growing with t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from protperf.attention.ops.linear import augment_values, normalize


@dataclass
class RecurrentState:
    """Running sums of one causal Performer layer.

    sums: (B, H, m, dv + 1), the last column the normalizer's key sum; key_log_scale: (B, H)
    the running stabilizer s_t (softmax kernel), or None (ReLU kernel, or before any token).
    """

    sums: torch.Tensor
    key_log_scale: torch.Tensor | None = None

    def nbytes(self) -> int:
        """Bytes held (the sums; constant in the number of tokens)."""
        return self.sums.numel() * self.sums.element_size()


def empty_recurrent_state(
    batch: int, heads: int, num_features: int, value_dim: int, dtype=torch.float32, device=None
) -> RecurrentState:
    """A zero state: (B, H, m, dv + 1) sums, no stabilizer yet."""
    sums = torch.zeros(batch, heads, num_features, value_dim + 1, dtype=dtype, device=device)
    return RecurrentState(sums)


def recurrent_favor_step(
    q_prime: torch.Tensor,
    k_prime: torch.Tensor,
    key_log_scale: torch.Tensor | None,
    v: torch.Tensor,
    state: RecurrentState,
) -> torch.Tensor:
    """Causal FAVOR+ output of the newest token; updates ``state`` in place.

    q_prime, k_prime: (B, H, 1, m), k' stabilized by its own log-scale key_log_scale
    (B, H, 1) (None: no stabilizer); v: (B, H, 1, dv); state.sums (B, H, m, dv + 1), all
    in one dtype -> (B, H, 1, dv).
    """
    if key_log_scale is not None:
        own = key_log_scale[..., 0]  # (B, H)
        previous = state.key_log_scale
        scale = own if previous is None else torch.maximum(previous, own)
        if previous is not None:
            state.sums.mul_(torch.exp(previous - scale)[..., None, None])
        k_prime = k_prime * torch.exp(own - scale)[..., None, None]
        state.key_log_scale = scale
    state.sums.add_(k_prime.transpose(-2, -1) @ augment_values(v))
    return normalize(q_prime @ state.sums)


@dataclass
class KVCache:
    """Keys and values of one exact-attention layer: (B, H, capacity, d) each; ``length``
    slots filled."""

    keys: torch.Tensor
    values: torch.Tensor
    length: int = 0

    def nbytes(self) -> int:
        """Bytes held (keys and values of every slot, filled or not)."""
        return 2 * self.keys.numel() * self.keys.element_size()


def empty_kv_cache(
    batch: int, heads: int, capacity: int, head_dim: int, dtype=torch.float32, device=None
) -> KVCache:
    """A preallocated cache for ``capacity`` tokens."""
    shape = (batch, heads, capacity, head_dim)
    return KVCache(torch.empty(shape, dtype=dtype, device=device),
                   torch.empty(shape, dtype=dtype, device=device))


def kv_cache_step(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: KVCache
) -> torch.Tensor:
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
    return F.scaled_dot_product_attention(q, keys, values)
