"""Vig et al. (2020) shares, cross-head amino-acid correlation, comparison with BLOSUM62."""

from __future__ import annotations

import numpy as np
import pytest

from protperf.analysis.blosum import blosum62, correlate
from protperf.analysis.residues import AMINO_ACIDS
from protperf.analysis.vig import (
    amino_acid_correlation,
    attention_shares,
    skip_reason,
    vig_similarity,
)


def test_attention_shares_and_dropped_heads():
    counts = np.zeros((2, 2, 20))
    counts[0, 0, AMINO_ACIDS.index("A")] = 3
    counts[0, 0, AMINO_ACIDS.index("W")] = 1
    counts[1, 1] = np.arange(20)
    shares = attention_shares(counts)
    assert list(shares.index) == [(0, 0), (1, 1)]
    assert shares.loc[(0, 0), "A"] == pytest.approx(0.75)
    assert shares.loc[(0, 0), "W"] == pytest.approx(0.25)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)


def test_amino_acid_correlation_matches_numpy():
    counts = np.random.default_rng(0).poisson(5.0, size=(3, 4, 20)).astype(float)
    shares = attention_shares(counts)
    correlation = amino_acid_correlation(shares)
    np.testing.assert_allclose(correlation.to_numpy(), np.corrcoef(shares.to_numpy().T))
    assert list(correlation.index) == list(AMINO_ACIDS)


def test_vig_similarity_recovers_planted_structure():
    # Heads attend to groups of amino acids that BLOSUM62 calls similar: shares co-vary.
    rng = np.random.default_rng(1)
    reference = blosum62().to_numpy()
    loadings = np.exp(reference / 2)  # (20 amino acids, 20 latent "preferences")
    counts = rng.gamma(1.0, size=(4, 8, 20)) @ loadings.T  # (layers, heads, 20)
    counts[0, 0] = 0  # a head with no high-confidence attention at all
    correlation, summary = vig_similarity(counts, n_permutations=99)
    assert summary["heads_used"] == 31 and summary["heads_dropped"] == 1
    expected = correlate(correlation.to_numpy(), reference, "offdiag", "pearson")["r"]
    assert summary["pearson_offdiag"] == pytest.approx(expected)
    assert summary["pearson_offdiag"] > 0.3 and summary["pearson_offdiag_p"] <= 0.05
    _, noise = vig_similarity(rng.poisson(20.0, size=(4, 8, 20)), n_permutations=99)
    assert abs(noise["pearson_offdiag"]) < summary["pearson_offdiag"]


def test_too_few_heads_give_no_correlation_and_say_why():
    counts = np.zeros((2, 4, 20))
    counts[0, :2] = np.random.default_rng(0).poisson(5.0, size=(2, 20))  # 2 usable heads of 8
    correlation, summary = vig_similarity(counts, n_permutations=9)
    assert correlation.isna().all().all() and np.isnan(summary["pearson_offdiag"])
    assert skip_reason(summary, 0.1) == (
        "skipped: 2 of 8 heads have attention weights above 0.1 on amino acids; the correlation "
        "across heads needs at least 3 (a model with more heads, shorter proteins or a lower "
        "vig_threshold)")
    counts[0, 2] = counts[0, 0] + 1
    _, usable = vig_similarity(counts, n_permutations=9)
    assert skip_reason(usable, 0.1) is None
