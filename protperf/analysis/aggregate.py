"""Attention aggregated into per-head 20 x 20 amino-acid sums (pure tensor math).

For a head with attention A (rows sum to one over the allowed keys), the aggregate is

    S[a, b] = sum over sequences, over query i with residue a, over allowed key j with
              residue b, of A[i, j]

i.e. the attention mass that queries of amino acid a send to keys of amino acid b.  Tokens that
are not one of the 20 standard amino acids (residue index -1) contribute to the normalization of
A (they are keys like any other) but to no row or column of S.

Two ways to compute it:

* explicit (:func:`aggregate_attention`): from an attention matrix (B, H, L, L) (a layer's
  ``attention_weights``), processed in blocks of query rows so the temporaries are O(B H C L);
* linear (:func:`aggregate_linear`): for Performers, whose attention is
  A[i, j] = q'_i . k'_j / D_i with D_i = sum over allowed j of q'_i . k'_j, without ever forming
  an L x L matrix.  Bidirectional:  S[a, b] = (sum_{i: a} q'_i / D_i) . (sum_{j: b} k'_j).
  Causal (j <= i): per-residue running sums R_b = sum_{j < chunk start, residue b} k'_j are
  carried across chunks of C positions and the pairs inside a chunk are done exactly, so memory
  is O(B H (C m + C^2 + 20 m)) and time O(B H L (C + 20) m).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from protperf.analysis.residues import NUM_AMINO_ACIDS, one_hot_residues
from protperf.attention.weights import check_block_size


def _safe_reciprocal(x: torch.Tensor) -> torch.Tensor:
    """1/x, and 0 where x == 0 (rows with no allowed key: padding)."""
    nonzero = x != 0
    return torch.where(nonzero, 1.0 / torch.where(nonzero, x, torch.ones_like(x)), 0.0)


def aggregate_attention_rows(
    attention_rows: torch.Tensor, query_residues: torch.Tensor, key_residues: torch.Tensor
) -> torch.Tensor:
    """Aggregate a block of attention rows.

    attention_rows: (B, H, C, L) attention of C query positions over all L keys.
    query_residues: (B, C) residue index (0..19, -1 excluded) of those queries.
    key_residues: (B, L) residue index of the keys.
    Returns (H, 20, 20): S[h, a, b] summed over the batch.
    """
    dtype = attention_rows.dtype
    to_keys = attention_rows @ one_hot_residues(key_residues, dtype)[:, None]  # (B, H, C, 20)
    return torch.einsum("bca,bhcz->haz", one_hot_residues(query_residues, dtype), to_keys)


def attention_row_blocks(
    attention: torch.Tensor, block_size: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (start, attention[:, :, start:start + block_size]) for a (B, H, L, L) matrix."""
    check_block_size(block_size)
    for start in range(0, attention.shape[2], block_size):
        yield start, attention[:, :, start : start + block_size]


def aggregate_attention(
    attention: torch.Tensor, residues: torch.Tensor, block_size: int = 256
) -> torch.Tensor:
    """Explicit aggregate. attention: (B, H, L, L); residues: (B, L). Returns (H, 20, 20)."""
    if attention.dim() != 4 or attention.shape[-1] != attention.shape[-2]:
        raise ValueError(f"attention must be (B, H, L, L), got {tuple(attention.shape)}")
    if residues.shape != (attention.shape[0], attention.shape[-1]):
        raise ValueError(
            f"residues must be (B, L) = {(attention.shape[0], attention.shape[-1])}, "
            f"got {tuple(residues.shape)}"
        )
    total = attention.new_zeros(attention.shape[1], NUM_AMINO_ACIDS, NUM_AMINO_ACIDS)
    for start, rows in attention_row_blocks(attention, block_size):
        query_residues = residues[:, start : start + rows.shape[2]]
        total += aggregate_attention_rows(rows, query_residues, residues)
    return total


def _masked_keys(k_features: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    if key_mask is None:
        return k_features
    return k_features * key_mask[:, None, :, None].to(k_features.dtype)


def aggregate_linear(
    q_features: torch.Tensor,
    k_features: torch.Tensor,
    residues: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    causal: bool = False,
    block_size: int = 64,
) -> torch.Tensor:
    """Linear-time aggregate of a Performer's implicit attention A = q'k'^T / D.

    q_features, k_features: (B, H, L, m); residues: (B, L) residue index (-1 excluded);
    key_mask: (B, L) bool, True at keys that may be attended (None: all); causal: j <= i only.
    Returns (H, 20, 20), equal to ``aggregate_attention`` of the implicit attention
    (``protperf.attention.weights.implicit_weight_rows``).
    """
    if q_features.shape != k_features.shape or q_features.dim() != 4:
        raise ValueError(
            "q_features and k_features must both be (B, H, L, m), got "
            f"{tuple(q_features.shape)} and {tuple(k_features.shape)}"
        )
    if tuple(residues.shape) != (q_features.shape[0], q_features.shape[2]):
        raise ValueError(
            f"residues must be (B, L) = {(q_features.shape[0], q_features.shape[2])}, "
            f"got {tuple(residues.shape)}"
        )
    check_block_size(block_size)
    dtype = q_features.dtype
    keys = _masked_keys(k_features, key_mask)
    key_residues = residues if key_mask is None else residues.masked_fill(~key_mask.bool(), -1)
    one_hot_q = one_hot_residues(residues, dtype)  # (B, L, 20)
    one_hot_k = one_hot_residues(key_residues, dtype)
    if not causal:
        normalizer = torch.einsum("bhlm,bhm->bhl", q_features, keys.sum(2))  # D_i
        scaled_q = q_features * _safe_reciprocal(normalizer)[..., None]
        query_sums = torch.einsum("bla,bhlm->bham", one_hot_q, scaled_q)  # (B, H, 20, m)
        key_sums = torch.einsum("blz,bhlm->bhzm", one_hot_k, keys)
        return torch.einsum("bham,bhzm->haz", query_sums, key_sums)

    batch, heads, length, features = q_features.shape
    residue_state = q_features.new_zeros(batch, heads, NUM_AMINO_ACIDS, features)  # R_b
    key_state = q_features.new_zeros(batch, heads, features)  # sum of all allowed k'_j so far
    total = q_features.new_zeros(heads, NUM_AMINO_ACIDS, NUM_AMINO_ACIDS)
    for start in range(0, length, block_size):
        stop = min(start + block_size, length)
        q, k = q_features[:, :, start:stop], keys[:, :, start:stop]
        hot_q, hot_k = one_hot_q[:, start:stop], one_hot_k[:, start:stop]
        intra = (q @ k.transpose(-1, -2)).tril()  # (B, H, C, C), pairs j <= i inside the chunk
        normalizer = torch.einsum("bhcm,bhm->bhc", q, key_state) + intra.sum(-1)
        weight = _safe_reciprocal(normalizer)  # 1 / D_i
        query_sums = torch.einsum("bca,bhcm->bham", hot_q, q * weight[..., None])
        total += torch.einsum("bham,bhzm->haz", query_sums, residue_state)  # keys before chunk
        total += torch.einsum("bca,bhcz->haz", hot_q, (intra * weight[..., None]) @ hot_k[:, None])
        residue_state += torch.einsum("bcz,bhcm->bhzm", hot_k, k)
        key_state += k.sum(2)
    return total


def uniform_aggregate(
    residues: torch.Tensor, key_mask: torch.Tensor | None = None, causal: bool = False
) -> torch.Tensor:
    """Aggregate of uniform attention over the allowed keys: the frequency baseline.

    residues: (B, L); returns (20, 20) float64: what S would be if every query spread its
    attention evenly over the keys it may see (all allowed keys, or those j <= i if causal).
    Computed as the linear aggregate with constant features (m = 1).
    """
    ones = torch.ones(*residues.shape, dtype=torch.float64, device=residues.device)
    ones = ones[:, None, :, None]
    return aggregate_linear(ones, ones, residues, key_mask, causal, block_size=256)[0]


def pair_counts(
    residues: torch.Tensor, key_mask: torch.Tensor | None = None, causal: bool = False
) -> torch.Tensor:
    """Number of (query, allowed key) position pairs per amino-acid pair.

    residues: (B, L); returns (20, 20) float64 N[a, b] (j <= i only if causal; includes i = j).
    """
    one_hot_q = one_hot_residues(residues, torch.float64)
    key_residues = residues if key_mask is None else residues.masked_fill(~key_mask.bool(), -1)
    one_hot_k = one_hot_residues(key_residues, torch.float64)
    if causal:
        return torch.einsum("bla,blz->az", one_hot_q, one_hot_k.cumsum(1))
    return torch.einsum("ba,bz->az", one_hot_q.sum(1), one_hot_k.sum(1))


def high_attention_counts(
    attention_rows: torch.Tensor,
    query_mask: torch.Tensor,
    key_residues: torch.Tensor,
    threshold: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts for Vig et al. (2020): attention weights above ``threshold`` by key amino acid.

    attention_rows: (B, H, C, L); query_mask: (B, C) bool, queries that count (real tokens);
    key_residues: (B, L) residue index.  Returns (counts (H, 20), all_high (H,)): the number of
    (query, key) pairs with weight > threshold whose key is each amino acid, and the number of
    such pairs whatever the key (the difference landed on excluded tokens).
    """
    high = (attention_rows > threshold) & query_mask.bool()[:, None, :, None]
    high = high.to(torch.float64)
    counts = torch.einsum("bhcl,blz->hz", high, one_hot_residues(key_residues, torch.float64))
    return counts, high.sum(dim=(0, 2, 3))
