"""Exact softmax attention (torch scaled_dot_product_attention) and its pair masks.

Shapes: ``q, k: (B, H, L, d)``, ``v: (B, H, L, dv)``, ``key_mask: (B, L)`` bool with True at
real tokens, ``segment_ids: (B, L)`` (pairs across segments masked). Scores are q.k / sqrt(d).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from protperf.attention.ops.segments import same_segment


def allowed_pairs(
    length: int,
    causal: bool,
    key_mask: torch.Tensor | None,
    device: torch.device,
    segment_ids: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """Boolean (B or 1, 1, L, L) mask of the (query, key) pairs attention may use, or None.

    A query row with no allowed key (e.g. a padding query before any real token in causal
    mode) is allowed everything, so the softmax stays finite; such rows are padding and the
    module zeroes their output.
    """
    if key_mask is None and not causal and segment_ids is None:
        return None
    allowed = torch.ones(1, 1, length, length, dtype=torch.bool, device=device)
    if causal:
        allowed = allowed.tril()
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, None, :]
    if segment_ids is not None:  # block-diagonal: one block per protein
        allowed = allowed & same_segment(segment_ids, segment_ids)[:, None]
    empty_rows = ~allowed.any(dim=-1, keepdim=True)
    return allowed | empty_rows


def exact_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    key_mask: torch.Tensor | None = None,
    segment_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) v via scaled_dot_product_attention -> (B, H, L, dv).

    Without a padding mask or segments the causal case uses SDPA's ``is_causal`` (fused
    kernels); otherwise a boolean (B, 1, L, L) mask.
    """
    if key_mask is None and segment_ids is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    mask = allowed_pairs(q.shape[-2], causal, key_mask, q.device, segment_ids)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
