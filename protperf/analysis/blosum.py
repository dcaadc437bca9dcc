"""BLOSUM62 and the correlation of 20 x 20 similarity matrices with it.

Entries compared: the lower triangle of the (symmetric) matrices -- with the diagonal
("full", 210 entries) and without it ("offdiag", 190 entries).  Pearson and Spearman come from
scipy.stats; their parametric p-values assume independent entries, which matrix entries are not,
so the reported significance is a permutation (Mantel) test: the amino-acid labels of the
similarity matrix are shuffled (rows and columns together) and the correlation recomputed; the
one-sided p-value is (1 + #{r_perm >= r_obs}) / (1 + n_permutations).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from Bio.Align import substitution_matrices
from scipy import stats

from protperf.analysis.residues import AMINO_ACIDS

SUBSETS = ("full", "offdiag")
METHODS = ("pearson", "spearman")


def blosum62(order: str = AMINO_ACIDS) -> pd.DataFrame:
    """BLOSUM62 (Biopython's copy) as a DataFrame indexed and columned by ``order``."""
    matrix = substitution_matrices.load("BLOSUM62")
    letters = list(order)
    values = np.array([[matrix[a, b] for b in letters] for a in letters], dtype=np.float64)
    return pd.DataFrame(values, index=letters, columns=letters)


def triangle_indices(size: int, subset: str) -> tuple[np.ndarray, np.ndarray]:
    """Row/column indices of the lower triangle: ``full`` with, ``offdiag`` without diagonal."""
    if subset not in SUBSETS:
        raise ValueError(f"subset={subset!r} is not one of {', '.join(SUBSETS)}")
    return np.tril_indices(size, k=0 if subset == "full" else -1)


def correlate(matrix: np.ndarray, reference: np.ndarray, subset: str, method: str) -> dict:
    """Correlation of two (20, 20) matrices over a lower-triangle subset (non-finite dropped).

    Returns {"r", "p_parametric", "n"}; r is NaN when fewer than 3 entries are usable or one side
    is constant.
    """
    rows, cols = triangle_indices(len(reference), subset)
    x, y = np.asarray(matrix, dtype=np.float64)[rows, cols], np.asarray(reference)[rows, cols]
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {', '.join(METHODS)}")
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"r": np.nan, "p_parametric": np.nan, "n": int(len(x))}
    result = stats.pearsonr(x, y) if method == "pearson" else stats.spearmanr(x, y)
    return {"r": float(result.statistic), "p_parametric": float(result.pvalue), "n": int(len(x))}


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of x, y: (P, n), ignoring NaN positions (same in both)."""
    valid = np.isfinite(x) & np.isfinite(y)
    count = np.maximum(valid.sum(axis=1), 1)
    x0, y0 = np.where(valid, x, 0.0), np.where(valid, y, 0.0)
    mx, my = x0.sum(1) / count, y0.sum(1) / count
    dx, dy = np.where(valid, x - mx[:, None], 0.0), np.where(valid, y - my[:, None], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (dx * dy).sum(1) / np.sqrt((dx * dx).sum(1) * (dy * dy).sum(1))


def permutation_null(
    matrix: np.ndarray,
    reference: np.ndarray,
    subset: str,
    method: str,
    permutations: np.ndarray,
) -> np.ndarray:
    """Correlations after relabelling the amino acids of ``matrix``.

    permutations: (P, 20) integer permutations.  Returns (P,) correlations of
    matrix[perm][:, perm] with ``reference`` over ``subset`` (non-finite entries dropped).
    """
    rows, cols = triangle_indices(len(reference), subset)
    matrix = np.asarray(matrix, dtype=np.float64)
    shuffled = matrix[permutations[:, rows], permutations[:, cols]]  # (P, n)
    target = np.broadcast_to(np.asarray(reference, dtype=np.float64)[rows, cols], shuffled.shape)
    valid = np.isfinite(shuffled) & np.isfinite(target)
    shuffled, target = np.where(valid, shuffled, np.nan), np.where(valid, target, np.nan)
    if method == "spearman":
        shuffled = stats.rankdata(shuffled, axis=1, nan_policy="omit")
        target = stats.rankdata(target, axis=1, nan_policy="omit")
    return _rowwise_pearson(shuffled, target)


def random_permutations(count: int, size: int = 20, seed: int = 0) -> np.ndarray:
    """(count, size) independent random permutations from a seeded generator."""
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random((count, size)), axis=1)


def compare_with_blosum(
    matrix: np.ndarray,
    reference: pd.DataFrame | None = None,
    permutations: np.ndarray | None = None,
) -> dict:
    """All correlations of one (20, 20) similarity matrix with BLOSUM62.

    Returns a flat dict: ``{method}_{subset}`` (r), ``{method}_{subset}_p`` (permutation p-value,
    if ``permutations`` given), ``{method}_{subset}_p_parametric`` and ``n_{subset}``.
    """
    reference_values = (blosum62() if reference is None else reference).to_numpy()
    row: dict = {}
    for subset in SUBSETS:
        for method in METHODS:
            key = f"{method}_{subset}"
            observed = correlate(matrix, reference_values, subset, method)
            row[key] = observed["r"]
            row[f"{key}_p_parametric"] = observed["p_parametric"]
            row[f"n_{subset}"] = observed["n"]
            if permutations is not None:
                null = permutation_null(matrix, reference_values, subset, method, permutations)
                row[f"{key}_p"] = permutation_p_value(observed["r"], null)
    return row


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """One-sided (greater) permutation p-value (1 + #{null >= observed}) / (1 + len(null))."""
    if not np.isfinite(observed):
        return np.nan
    null = null[np.isfinite(null)]
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))


def head_correlations(
    similarities: np.ndarray,
    pooled: np.ndarray | None = None,
    layer_pooled: np.ndarray | None = None,
    n_permutations: int = 1000,
    seed: int = 0,
    rank_by: str = "pearson_offdiag",
) -> pd.DataFrame:
    """Per-head comparison with BLOSUM62, best heads first.

    similarities: (layers, heads, 20, 20); pooled: optional (20, 20) added as a row with
    layer = head = -1, kind "pooled"; layer_pooled: optional (layers, 20, 20), rows with
    head = -1, kind "layer".  Those come first, without rank.  Heads get ``rank`` (1 = highest
    ``rank_by``) and the
    Benjamini-Hochberg q-value of ``{rank_by}_p`` over the heads (pooled row excluded).
    """
    reference = blosum62()
    perms = random_permutations(n_permutations, seed=seed) if n_permutations > 0 else None
    records = []
    layers, heads = similarities.shape[:2]
    for layer in range(layers):
        for head in range(heads):
            row = compare_with_blosum(similarities[layer, head], reference, perms)
            records.append({"layer": layer, "head": head, "kind": "head", **row})
    if pooled is not None:
        row = compare_with_blosum(pooled, reference, perms)
        records.append({"layer": -1, "head": -1, "kind": "pooled", **row})
    for layer, matrix in enumerate([] if layer_pooled is None else layer_pooled):
        row = compare_with_blosum(matrix, reference, perms)
        records.append({"layer": layer, "head": -1, "kind": "layer", **row})
    table = pd.DataFrame.from_records(records)
    is_head = table["kind"] == "head"
    p_column = f"{rank_by}_p"
    if p_column in table:
        q = np.full(len(table), np.nan)
        head_p = table.loc[is_head, p_column].to_numpy()
        finite = np.isfinite(head_p)
        if finite.any():
            head_q = np.full(len(head_p), np.nan)
            head_q[finite] = stats.false_discovery_control(head_p[finite])
            q[is_head.to_numpy()] = head_q
        table[f"{rank_by}_q"] = q
    ranked = table[is_head].sort_values(rank_by, ascending=False, na_position="last", kind="stable")
    ranked.insert(0, "rank", pd.array(np.arange(1, len(ranked) + 1), dtype="Int64"))
    pooled_rows = table[~is_head].copy()
    pooled_rows.insert(0, "rank", pd.array([pd.NA] * len(pooled_rows), dtype="Int64"))
    result = pd.concat([pooled_rows, ranked], ignore_index=True)
    return result[_column_order(result.columns)]


def _column_order(columns) -> list[str]:
    """rank, kind, layer, head, then per (subset, method): r, permutation p, q, parametric p; n."""
    first = ["rank", "kind", "layer", "head"]
    ordered = []
    for subset in reversed(SUBSETS):  # offdiag first: the headline numbers
        for method in METHODS:
            key = f"{method}_{subset}"
            ordered += [c for c in (key, f"{key}_p", f"{key}_q", f"{key}_p_parametric")
                        if c in columns]
    rest = [c for c in columns if c not in first + ordered]
    return first + ordered + rest
