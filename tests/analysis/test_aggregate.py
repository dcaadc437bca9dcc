"""Aggregation of attention into 20 x 20 sums: linear == explicit, constructed heads."""

from __future__ import annotations

import pytest
import torch

from protperf.analysis.aggregate import (
    aggregate_attention,
    aggregate_linear,
    high_attention_counts,
    pair_counts,
    uniform_aggregate,
)
from protperf.analysis.residues import residue_index
from protperf.attention.weights import implicit_weight_rows

from .conftest import batch


def random_features(tokens: torch.Tensor, heads: int = 3, features: int = 7, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    shape = (tokens.shape[0], heads, tokens.shape[1], features)
    q = torch.rand(shape, generator=generator, dtype=torch.float64) + 1e-3
    k = torch.rand(shape, generator=generator, dtype=torch.float64) + 1e-3
    return q, k


def feature_attention_matrix(q, k, mask=None, causal=False):
    """The implicit attention (B, H, L, L) of Performer features q', k', all rows at once."""
    return torch.cat([rows for _, rows in implicit_weight_rows(q, k, mask, causal, q.shape[2])], 2)


def allowed_matrix(mask: torch.Tensor, causal: bool) -> torch.Tensor:
    length = mask.shape[1]
    allowed = mask[:, None, :].expand(-1, length, -1)
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool).tril()
    return allowed  # (B, L, L)


def brute_force_sums(attention: torch.Tensor, residues: torch.Tensor) -> torch.Tensor:
    """The definition, one (i, j) pair at a time."""
    batch_size, heads, length, _ = attention.shape
    total = torch.zeros(heads, 20, 20, dtype=torch.float64)
    for b in range(batch_size):
        for i in range(length):
            for j in range(length):
                a, c = int(residues[b, i]), int(residues[b, j])
                if a >= 0 and c >= 0:
                    total[:, a, c] += attention[b, :, i, j]
    return total


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("block_size", [1, 5, 64])
def test_linear_aggregate_equals_explicit(mixed_batch, causal, block_size):
    tokens, mask = mixed_batch
    residues = residue_index(tokens, mask)
    q, k = random_features(tokens)
    attention = feature_attention_matrix(q, k, mask, causal)
    explicit = aggregate_attention(attention, residues, block_size=4)
    linear = aggregate_linear(q, k, residues, mask, causal, block_size=block_size)
    torch.testing.assert_close(linear, explicit, rtol=0, atol=1e-8)
    assert explicit.abs().sum() > 1.0  # not trivially zero


def test_explicit_aggregate_matches_definition(mixed_batch):
    tokens, mask = mixed_batch
    residues = residue_index(tokens, mask)
    q, k = random_features(tokens, heads=2, seed=3)
    attention = feature_attention_matrix(q, k, mask, causal=True)
    torch.testing.assert_close(
        aggregate_attention(attention, residues, block_size=3),
        brute_force_sums(attention, residues),
        rtol=0,
        atol=1e-10,
    )


@pytest.mark.parametrize("causal", [False, True])
def test_feature_attention_rows_are_normalized_over_allowed_keys(mixed_batch, causal):
    tokens, mask = mixed_batch
    q, k = random_features(tokens)
    attention = feature_attention_matrix(q, k, mask, causal)
    allowed = allowed_matrix(mask, causal)[:, None]
    assert (attention[~allowed.expand_as(attention)] == 0).all()
    row_sums = attention.sum(-1)
    torch.testing.assert_close(row_sums, torch.ones_like(row_sums), rtol=0, atol=1e-12)
    reference = (q @ k.transpose(-1, -2)) * allowed
    torch.testing.assert_close(attention, reference / reference.sum(-1, keepdim=True))


def test_identical_residue_head_gives_diagonal_of_residue_counts():
    tokens, mask = batch("^AAC$", "^CWXW$")
    residues = residue_index(tokens, mask)
    same = (tokens[:, :, None] == tokens[:, None, :]) & allowed_matrix(mask, False)
    attention = (same / same.sum(-1, keepdim=True).clamp_min(1)).to(torch.float64)[:, None]
    sums = aggregate_attention(attention, residues, block_size=2)[0]
    expected = torch.zeros(20, 20, dtype=torch.float64)
    for letter, count in {"A": 2, "C": 2, "W": 2}.items():
        index = "ACDEFGHIKLMNPQRSTVWY".index(letter)
        expected[index, index] = count
    torch.testing.assert_close(sums, expected)


@pytest.mark.parametrize("causal", [False, True])
def test_uniform_head_gives_frequency_products(mixed_batch, causal):
    tokens, mask = mixed_batch
    residues = residue_index(tokens, mask)
    allowed = allowed_matrix(mask, causal).to(torch.float64)
    attention = (allowed / allowed.sum(-1, keepdim=True))[:, None]
    expected = torch.zeros(20, 20, dtype=torch.float64)
    for b in range(tokens.shape[0]):
        for i in range(int(mask[b].sum())):
            keys = residues[b, : i + 1] if causal else residues[b, mask[b]]
            visible = i + 1 if causal else int(mask[b].sum())
            if residues[b, i] >= 0:
                for key in keys[keys >= 0]:
                    expected[residues[b, i], key] += 1.0 / visible
    torch.testing.assert_close(aggregate_attention(attention, residues)[0], expected)
    torch.testing.assert_close(uniform_aggregate(residues, mask, causal), expected)


@pytest.mark.parametrize("causal", [False, True])
def test_pair_counts(mixed_batch, causal):
    tokens, mask = mixed_batch
    residues = residue_index(tokens, mask)
    expected = torch.zeros(20, 20, dtype=torch.float64)
    for b in range(tokens.shape[0]):
        for i in range(tokens.shape[1]):
            for j in range(i + 1 if causal else tokens.shape[1]):
                if residues[b, i] >= 0 and residues[b, j] >= 0:
                    expected[residues[b, i], residues[b, j]] += 1
    torch.testing.assert_close(pair_counts(residues, mask, causal), expected)


def test_high_attention_counts(mixed_batch):
    tokens, mask = mixed_batch
    residues = residue_index(tokens, mask)
    q, k = random_features(tokens, heads=2, seed=5)
    attention = feature_attention_matrix(q, k, mask, causal=True)
    counts, high = high_attention_counts(attention, mask, residues, threshold=0.1)
    expected_counts = torch.zeros(2, 20, dtype=torch.float64)
    expected_high = torch.zeros(2, dtype=torch.float64)
    for b, h, i, j in (attention > 0.1).nonzero().tolist():
        if mask[b, i]:
            expected_high[h] += 1
            if residues[b, j] >= 0:
                expected_counts[h, residues[b, j]] += 1
    torch.testing.assert_close(counts, expected_counts)
    torch.testing.assert_close(high, expected_high)
    assert expected_high.sum() > expected_counts.sum() > 0  # some high weights on specials


def test_shape_errors(mixed_batch):
    tokens, mask = mixed_batch
    residues = residue_index(tokens, mask)
    q, k = random_features(tokens)
    with pytest.raises(ValueError, match=r"q_features and k_features must both be \(B, H, L, m\)"):
        aggregate_linear(q, k[..., :3], residues)
    with pytest.raises(ValueError, match=r"residues must be \(B, L\) = \(3, 27\), got \(3, 26\)"):
        aggregate_linear(q, k, residues[:, :-1])
    with pytest.raises(ValueError, match="block_size must be >= 1, got 0"):
        aggregate_linear(q, k, residues, causal=True, block_size=0)
    with pytest.raises(ValueError, match=r"attention must be \(B, H, L, L\)"):
        aggregate_attention(q, residues)
