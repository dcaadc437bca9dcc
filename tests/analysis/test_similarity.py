"""Normalization and the accumulator: exclusions counted, exact and Performer paths agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protperf.analysis.residues import AMINO_ACIDS, TokenTally, residue_index
from protperf.analysis.similarity import (
    SimilarityAccumulator,
    fit_marginals,
    log_odds,
    marginal_log_odds,
    mean_attention,
    relative_to_uniform,
    symmetrize,
)

from .conftest import batch
from .test_aggregate import allowed_matrix, feature_attention_matrix, random_features


def test_marginal_log_odds_matches_formula_and_is_zero_under_independence():
    rng = np.random.default_rng(0)
    sums = rng.random((20, 20)) + 0.1
    p = sums / sums.sum()
    expected = np.log2(p / np.outer(p.sum(1), p.sum(0)))
    np.testing.assert_allclose(marginal_log_odds(sums), expected, rtol=1e-12)
    independent = np.outer(rng.random(20) + 0.1, rng.random(20) + 0.1)
    np.testing.assert_allclose(marginal_log_odds(independent), 0.0, atol=1e-12)


def test_fit_marginals_matches_both_marginals():
    rng = np.random.default_rng(1)
    baseline = rng.random((20, 20)) + 0.05
    sums = rng.random((3, 20, 20)) * 5
    expected = fit_marginals(baseline, sums)
    np.testing.assert_allclose(expected.sum(-1), sums.sum(-1), rtol=1e-8)
    np.testing.assert_allclose(expected.sum(-2), sums.sum(-2), rtol=1e-8)
    # the fitted table keeps the baseline's odds ratios (only row/column factors change)
    ratio = expected[0] / baseline
    np.testing.assert_allclose(ratio / ratio[:1] / ratio[:, :1] * ratio[0, 0], 1.0, rtol=1e-8)


def test_log_odds_is_zero_for_residue_blind_heads_and_classical_for_product_baselines():
    rng = np.random.default_rng(2)
    uniform = rng.random((20, 20)) + 0.1  # co-occurrence structure: not a product
    key_preference = uniform * (rng.random(20) + 0.1)[None, :] * (rng.random(20) + 0.5)[:, None]
    np.testing.assert_allclose(log_odds(key_preference, uniform), 0.0, atol=1e-9)
    assert np.abs(marginal_log_odds(key_preference)).max() > 0.1  # the confounded form is not 0
    product = np.outer(rng.random(20) + 0.1, rng.random(20) + 0.1)
    sums = rng.random((20, 20)) + 0.1
    np.testing.assert_allclose(log_odds(sums, product), marginal_log_odds(sums), atol=1e-9)


def test_unobserved_pairs_are_nan_and_zero_mass_is_minus_inf():
    sums = np.ones((20, 20))
    sums[0, 1] = 0.0
    counts = np.ones((20, 20))
    counts[2, 3] = 0
    result = log_odds(sums, counts)
    assert np.isneginf(result[0, 1]) and np.isnan(result[2, 3])
    assert np.isnan(mean_attention(sums, counts)[2, 3])
    uniform = np.full((20, 20), 0.5)
    uniform[4, 4] = 0.0
    relative = relative_to_uniform(sums, uniform)
    assert np.isnan(relative[4, 4]) and relative[0, 0] == pytest.approx(1.0)


def test_symmetrize():
    matrix = np.arange(400.0).reshape(20, 20)
    matrix[3, 2] = np.nan
    matrix[5, 6] = matrix[6, 5] = np.nan
    result = symmetrize(matrix)
    np.testing.assert_array_equal(result, result.T)
    assert result[0, 1] == (matrix[0, 1] + matrix[1, 0]) / 2
    assert result[3, 2] == result[2, 3] == matrix[2, 3]
    assert np.isnan(result[5, 6])


def test_token_tally_counts_every_excluded_token(mixed_batch):
    tokens, mask = mixed_batch
    tally = TokenTally()
    tally.update(tokens, mask)
    summary = tally.as_dict()
    assert summary["rows"] == 3
    assert summary["nonstandard"] == {"X": 1, "B": 1, "Z": 1, "U": 1, "O": 1}
    assert summary["special"] == {"<mask>": 1, "<cls>": 3, "<eos>": 3, "<unk>": 1}
    assert summary["excluded_total"] == 13
    assert summary["standard"]["W"] == 3 and summary["standard"]["G"] == 3
    assert sum(summary["standard"].values()) + 13 == int(mask.sum())


def test_residue_index_excludes_nonstandard_specials_and_padding(mixed_batch):
    tokens, mask = mixed_batch
    residues = residue_index(tokens, mask)
    assert int((residues >= 0).sum()) == int(mask.sum()) - 13
    assert residues[1, 1] == AMINO_ACIDS.index("A") and residues[1, 4] == -1  # X
    assert (residues[~mask] == -1).all()
    with pytest.raises(ValueError, match=r"token id 30 is outside the alphabet \(0..29\)"):
        residue_index(torch.tensor([[5, 30]]))
    with pytest.raises(TypeError, match="tokens must be integer token ids"):
        residue_index(torch.zeros(1, 3))


@pytest.mark.parametrize("causal", [False, True])
def test_exact_and_performer_paths_accumulate_the_same(mixed_batch, causal):
    tokens, mask = mixed_batch
    exact = SimilarityAccumulator(num_layers=2, num_heads=3, causal=causal, block_size=4)
    performer = SimilarityAccumulator(num_layers=2, num_heads=3, causal=causal, block_size=5)
    for accumulator in (exact, performer):
        accumulator.add_batch(tokens, mask)
    for layer in range(2):
        q, k = random_features(tokens, seed=layer)
        exact.add_attention(layer, feature_attention_matrix(q, k, mask, causal))
        performer.add_features(layer, q, k)
    np.testing.assert_allclose(performer.totals.sums, exact.totals.sums, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(performer.totals.vig_counts, exact.totals.vig_counts)
    np.testing.assert_array_equal(performer.totals.vig_high, exact.totals.vig_high)


def test_excluded_key_mass_is_attention_sent_to_excluded_tokens(mixed_batch):
    tokens, mask = mixed_batch
    residues = residue_index(tokens, mask)
    q, k = random_features(tokens, heads=2, seed=9)
    attention = feature_attention_matrix(q, k, mask, causal=False)
    accumulator = SimilarityAccumulator(num_layers=1, num_heads=2, causal=False)
    accumulator.add_batch(tokens, mask)
    accumulator.add_attention(0, attention)
    standard_q = (residues >= 0)[:, None, :, None]
    excluded_k = (residues < 0)[:, None, None, :]
    expected = (attention * standard_q * excluded_k).sum((0, 2, 3)) / int((residues >= 0).sum())
    np.testing.assert_allclose(accumulator.totals.excluded_key_mass()[0], expected.numpy())
    assert accumulator.totals.standard_queries == int((residues >= 0).sum())


@pytest.mark.parametrize("causal", [False, True])
def test_uniform_attention_normalizes_to_zero(mixed_batch, causal):
    tokens, mask = mixed_batch
    allowed = allowed_matrix(mask, causal).to(torch.float64)
    uniform = (allowed / allowed.sum(-1, keepdim=True))[:, None]
    accumulator = SimilarityAccumulator(num_layers=1, num_heads=1, causal=causal)
    accumulator.add_batch(tokens, mask)
    accumulator.add_attention(0, uniform)
    observed = accumulator.totals.pair_counts > 0
    for normalization in ("uniform", "log_odds"):
        relative = accumulator.totals.similarity(normalization, symmetric=False)
        np.testing.assert_allclose(relative[0, 0][observed], 0.0, atol=1e-9)
        assert np.isnan(relative[0, 0][~observed]).all()


def test_uniform_attention_on_one_sequence_has_zero_log_odds():
    tokens, mask = batch("^MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ$")
    allowed = allowed_matrix(mask, False).to(torch.float64)
    accumulator = SimilarityAccumulator(num_layers=1, num_heads=1, causal=False)
    accumulator.add_batch(tokens, mask)
    accumulator.add_attention(0, (allowed / allowed.sum(-1, keepdim=True))[:, None])
    result = accumulator.totals.similarity("marginal_log_odds")[0, 0]
    np.testing.assert_allclose(result[np.isfinite(result)], 0.0, atol=1e-12)
    distinct = len(set("MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"))
    assert np.isfinite(result).sum() == distinct * distinct


def test_identity_head_log_odds_is_diagonal():
    tokens, mask = batch("^AACW$", "^CWWG$")
    same = (tokens[:, :, None] == tokens[:, None, :]) & allowed_matrix(mask, False)
    attention = (same / same.sum(-1, keepdim=True).clamp_min(1)).to(torch.float64)[:, None]
    accumulator = SimilarityAccumulator(num_layers=1, num_heads=1, causal=False)
    accumulator.add_batch(tokens, mask)
    accumulator.add_attention(0, attention)
    result = accumulator.totals.similarity("marginal_log_odds", symmetric=False)[0, 0]
    index = [AMINO_ACIDS.index(a) for a in "ACGW"]
    frequencies = np.array([2, 2, 1, 3]) / 8
    np.testing.assert_allclose(result[index, index], np.log2(1 / frequencies))
    off = result[np.ix_(index, index)][~np.eye(4, dtype=bool)]
    observed = accumulator.totals.pair_counts[np.ix_(index, index)][~np.eye(4, dtype=bool)] > 0
    assert np.isneginf(off[observed]).all()  # seen together, never attended
    assert np.isnan(off[~observed]).all() and (~observed).sum() == 2  # A-G never together
    pooled = accumulator.totals.pooled_similarity("mean", per_layer=True)
    assert pooled.shape == (1, 20, 20)


def test_accumulator_errors(mixed_batch):
    tokens, mask = mixed_batch
    accumulator = SimilarityAccumulator(num_layers=1, num_heads=2, causal=False)
    attention = torch.rand(3, 2, tokens.shape[1], tokens.shape[1])
    with pytest.raises(RuntimeError, match=r"call add_batch\(tokens, attention_mask\) before"):
        accumulator.add_attention(0, attention)
    accumulator.add_batch(tokens, mask)
    with pytest.raises(ValueError, match=r"layer 1 is outside 0..0"):
        accumulator.add_attention(1, attention)
    with pytest.raises(ValueError, match="expected 2 heads, got 3"):
        accumulator.add_attention(0, torch.rand(3, 3, tokens.shape[1], tokens.shape[1]))
    with pytest.raises(ValueError, match=r"attention is for \(B, L\) = \(3, 5\)"):
        accumulator.add_attention(0, torch.rand(3, 2, 5, 5))
    with pytest.raises(ValueError, match="normalization='bits' is not one of log_odds, marginal_"):
        accumulator.totals.similarity("bits")
