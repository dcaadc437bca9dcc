"""The explicit attention weights a layer applies: the L x L map, for analysis and plots.

Never on the training path (O(L^2)); ``MultiHeadAttention.attention_weights`` and
``attention_weight_rows`` call these. Rows come C query positions at a time, so memory is
O(B H C L). Shapes: ``q, k: (B, H, L, d)`` projected heads (rotary applied), ``q_features,
k_features: (B, H, L, m)`` non-negative Performer features, ``key_mask: (B, L)`` bool (True at
real tokens) or None; rows ``(B, H, C, L)``.

- exact: softmax(q k^T / sqrt(d)) over the allowed keys (j <= i when causal, real keys); a
  query with no allowed key (padding) gets a uniform row, as ``ops.exact.allowed_pairs``.
- Performer: the implicit A_ij = q'_i.k'_j / D_i, D_i = sum over allowed j of q'_i.k'_j
  (rows with D_i = 0 are zero).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

RowBlocks = Iterator[tuple[int, torch.Tensor]]


def check_block_size(block_size: int) -> None:
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")


def exact_weight_rows(
    q: torch.Tensor,
    k: torch.Tensor,
    key_mask: torch.Tensor | None,
    causal: bool,
    block_size: int,
) -> RowBlocks:
    """Yield (start, softmax rows (B, H, C, L)) of exact attention, C = ``block_size`` queries."""
    check_block_size(block_size)
    length = q.shape[2]
    positions = torch.arange(length, device=q.device)
    for start in range(0, length, block_size):
        block = q[:, :, start : start + block_size]
        scores = (block @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, C, L)
        allowed = torch.ones(1, 1, block.shape[2], length, dtype=torch.bool, device=q.device)
        if causal:
            query_positions = positions[start : start + block.shape[2], None]
            allowed = allowed & (positions[None, :] <= query_positions)
        if key_mask is not None:
            allowed = allowed & key_mask.bool()[:, None, None, :]
        allowed = allowed | ~allowed.any(dim=-1, keepdim=True)
        yield start, torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)


def implicit_weight_rows(
    q_features: torch.Tensor,
    k_features: torch.Tensor,
    key_mask: torch.Tensor | None,
    causal: bool,
    block_size: int,
) -> RowBlocks:
    """Yield (start, rows (B, H, C, L)) of a Performer's implicit attention q'_i.k'_j / D_i
    over allowed j (j <= i if causal), zero elsewhere. Time O(B H L^2 m) overall."""
    check_block_size(block_size)
    length = q_features.shape[2]
    keys = k_features
    if key_mask is not None:
        keys = k_features * key_mask[:, None, :, None].to(k_features.dtype)
    positions = torch.arange(length, device=q_features.device)
    for start in range(0, length, block_size):
        q = q_features[:, :, start : start + block_size]
        scores = q @ keys.transpose(-1, -2)  # (B, H, C, L)
        if causal:
            allowed = positions[None, :] <= positions[start : start + q.shape[2], None]
            scores = scores * allowed
        sums = scores.sum(-1, keepdim=True)
        yield start, torch.where(sums != 0, scores / torch.where(sums != 0, sums, 1.0), 0.0)


def identity_weight_rows(
    batch: int, heads: int, length: int, block_size: int, dtype: torch.dtype, device=None
) -> RowBlocks:
    """Yield (start, rows (B, H, C, L)) of the identity matrix (attention.kind='identity')."""
    check_block_size(block_size)
    eye = torch.eye(length, device=device, dtype=dtype)
    for start in range(0, length, block_size):
        yield start, eye[start : start + block_size].expand(batch, heads, -1, -1).clone()


def rows_to_matrix(rows: RowBlocks, query_mask: torch.Tensor | None) -> torch.Tensor:
    """Concatenate row blocks into (B, H, L, L); rows of padding queries (mask False) zeroed."""
    attention = torch.cat([block for _, block in rows], dim=2)
    if query_mask is not None:
        attention = attention * query_mask[:, None, :, None].to(attention.dtype)
    return attention
