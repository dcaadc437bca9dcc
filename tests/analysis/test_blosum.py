"""BLOSUM62 order/values and the correlation code against scipy and pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from protperf.analysis.blosum import (
    blosum62,
    compare_with_blosum,
    correlate,
    head_correlations,
    permutation_null,
    permutation_p_value,
    random_permutations,
)


def random_symmetric(seed: int) -> np.ndarray:
    matrix = np.random.default_rng(seed).normal(size=(20, 20))
    return (matrix + matrix.T) / 2


def test_blosum62_order_and_values():
    matrix = blosum62()
    assert "".join(matrix.index) == "ACDEFGHIKLMNPQRSTVWY"
    assert "".join(matrix.columns) == "ACDEFGHIKLMNPQRSTVWY"
    for a, b, score in [("A", "A", 4), ("W", "W", 11), ("C", "C", 9), ("I", "V", 3),
                        ("F", "Y", 3), ("K", "R", 2), ("D", "E", 2), ("W", "C", -2),
                        ("G", "I", -4), ("H", "Y", 2)]:
        assert matrix.loc[a, b] == score and matrix.loc[b, a] == score
    np.testing.assert_array_equal(matrix.to_numpy(), matrix.to_numpy().T)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_correlate_matches_pandas(method):
    matrix = random_symmetric(1)
    reference = blosum62()
    rows, cols = np.tril_indices(20, k=-1)
    expected = pd.Series(matrix[rows, cols]).corr(
        pd.Series(reference.to_numpy()[rows, cols]), method=method
    )
    result = correlate(matrix, reference.to_numpy(), "offdiag", method)
    assert result["r"] == pytest.approx(expected, abs=1e-12)
    assert result["n"] == 190
    assert correlate(matrix, reference.to_numpy(), "full", method)["n"] == 210


def test_correlate_drops_non_finite_entries():
    matrix = random_symmetric(2)
    matrix[5, 3] = np.nan
    matrix[7, 1] = -np.inf
    reference = blosum62().to_numpy()
    rows, cols = np.tril_indices(20, k=-1)
    x, y = matrix[rows, cols], reference[rows, cols]
    keep = np.isfinite(x)
    result = correlate(matrix, reference, "offdiag", "spearman")
    assert result["n"] == 188
    assert result["r"] == pytest.approx(stats.spearmanr(x[keep], y[keep]).statistic)
    assert np.isnan(correlate(np.ones((20, 20)), reference, "offdiag", "pearson")["r"])
    with pytest.raises(ValueError, match="method='kendall' is not one of pearson, spearman"):
        correlate(matrix, reference, "offdiag", "kendall")
    with pytest.raises(ValueError, match="subset='upper' is not one of full, offdiag"):
        correlate(matrix, reference, "upper", "pearson")


@pytest.mark.parametrize("method", ["pearson", "spearman"])
@pytest.mark.parametrize("subset", ["full", "offdiag"])
def test_permutation_null_matches_scipy_loop(method, subset):
    matrix = random_symmetric(3)
    matrix[4, 2] = matrix[2, 4] = np.nan
    reference = blosum62().to_numpy()
    perms = random_permutations(25, seed=4)
    null = permutation_null(matrix, reference, subset, method, perms)
    expected = [
        correlate(matrix[np.ix_(perm, perm)], reference, subset, method)["r"] for perm in perms
    ]
    np.testing.assert_allclose(null, expected, rtol=0, atol=1e-12)


def test_permutation_p_values_separate_signal_from_noise():
    reference = blosum62().to_numpy()
    perms = random_permutations(200, seed=0)
    signal = compare_with_blosum(reference + random_symmetric(5) * 0.5, permutations=perms)
    assert signal["pearson_offdiag"] > 0.7
    assert signal["pearson_offdiag_p"] == pytest.approx(1 / 201)
    noise = compare_with_blosum(random_symmetric(6), permutations=perms)
    assert noise["spearman_offdiag_p"] > 0.05
    assert permutation_p_value(0.5, np.array([0.1, 0.5, 0.7, np.nan])) == pytest.approx(3 / 4)


def test_head_correlations_ranks_heads_and_adds_pooled_row():
    reference = blosum62().to_numpy()
    similarities = np.stack([
        np.stack([random_symmetric(10), reference + random_symmetric(11)]),
        np.stack([reference + 3 * random_symmetric(12), random_symmetric(13)]),
    ])  # (2 layers, 2 heads, 20, 20)
    table = head_correlations(similarities, pooled=similarities.sum((0, 1)), n_permutations=50)
    assert table.loc[0, "kind"] == "pooled" and pd.isna(table.loc[0, "rank"])
    heads = table[table["kind"] == "head"]
    assert list(heads["rank"]) == [1, 2, 3, 4]
    assert (heads["layer"].iloc[0], heads["head"].iloc[0]) == (0, 1)
    assert heads["pearson_offdiag"].is_monotonic_decreasing
    expected_q = stats.false_discovery_control(heads["pearson_offdiag_p"].to_numpy())
    np.testing.assert_allclose(heads["pearson_offdiag_q"], expected_q)
    direct = correlate(similarities[1, 0], reference, "full", "spearman")["r"]
    row = heads[(heads["layer"] == 1) & (heads["head"] == 0)].iloc[0]
    assert row["spearman_full"] == pytest.approx(direct)
