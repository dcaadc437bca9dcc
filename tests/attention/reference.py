"""O(L^2) reference implementations: the oracles of the attention tests and benchmarks.

Nothing in protperf imports this module. Shapes as in ``ops``: features
``(B, H, L, m)``, values ``(B, H, L, dv)``, ``key_log_scale (B, H, L)``, ``segment_ids (B, L)``.
"""

from __future__ import annotations

import torch

from protperf.attention.ops.exact import allowed_pairs


def linear_attention_weights(
    q_prime: torch.Tensor,
    k_prime: torch.Tensor,
    causal: bool,
    key_log_scale: torch.Tensor | None = None,
    segment_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Unnormalized A_ij = q'_i.k'_j exp(s_j - s_i) on allowed pairs, 0 elsewhere: (B, H, L, L)."""
    weights = q_prime @ k_prime.transpose(-2, -1)
    length = weights.shape[-1]
    allowed = allowed_pairs(length, causal, None, weights.device, segment_ids)
    if allowed is None:
        allowed = torch.ones(1, 1, length, length, dtype=torch.bool, device=weights.device)
    if segment_ids is not None:  # no empty-row fallback here: rows keep only their block
        allowed = allowed & (segment_ids[:, None, :, None] == segment_ids[:, None, None, :])
    if key_log_scale is not None:
        log_rescale = key_log_scale.unsqueeze(-2) - key_log_scale.unsqueeze(-1)
        weights = weights * torch.exp(log_rescale.masked_fill(~allowed, float("-inf")))
    return weights.masked_fill(~allowed, 0.0)


def linear_attention_reference(
    q_prime: torch.Tensor,
    k_prime: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    key_log_scale: torch.Tensor | None = None,
    segment_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """O(L^2) normalized linear attention (A v) / (A 1) with A from linear_attention_weights."""
    weights = linear_attention_weights(q_prime, k_prime, causal, key_log_scale, segment_ids)
    return (weights @ v) / weights.sum(-1, keepdim=True)


def simple_gla_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None = None,
    scale: float | None = None,
    cu_seqlens: torch.Tensor | None = None,
    cu_seqlens_cpu: torch.Tensor | None = None,
) -> tuple[torch.Tensor, None]:
    """Quadratic simple gated linear attention with fla's ``chunk_simple_gla`` signature.

    q, k: (B, T, H, K); v: (B, T, H, V); g: (B, T, H) log-gates or None; cu_seqlens:
    (N + 1,) sequence starts in T (B == 1) or None (``cu_seqlens_cpu``, fla's host copy,
    is not needed here). out_i = sum_{j<=i, same sequence} scale (q_i.k_j) exp(G_i - G_j)
    v_j, G the cumulative sum of g. Returns (out in q's dtype, as fla's, None).
    """
    scale = k.shape[-1] ** -0.5 if scale is None else scale
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # (B, H, T, .)
    weights = scale * (q @ k.transpose(-2, -1))
    length = weights.shape[-1]
    allowed = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
    if cu_seqlens is not None:
        sequence = torch.bucketize(torch.arange(length, device=q.device), cu_seqlens[1:],
                                   right=True)
        allowed = allowed & (sequence[:, None] == sequence[None, :])
    if g is not None:
        cumulative = g.transpose(1, 2).to(weights.dtype).cumsum(-1)  # (B, H, T)
        log_decay = cumulative.unsqueeze(-1) - cumulative.unsqueeze(-2)
        weights = weights * torch.exp(log_decay.masked_fill(~allowed, float("-inf")))
    out = weights.masked_fill(~allowed, 0.0) @ v
    return out.transpose(1, 2).to(q.dtype), None


def softmax_attention_matrix(
    q: torch.Tensor,
    k: torch.Tensor,
    causal: bool,
    key_mask: torch.Tensor | None = None,
    segment_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """The (B, H, L, L) row-stochastic softmax attention matrix (O(L^2); reference/plots)."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    mask = allowed_pairs(q.shape[-2], causal, key_mask, q.device, segment_ids)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)
