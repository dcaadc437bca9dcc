"""The amino-acid similarity procedure of Vig et al. (2020), "BERTology Meets Biology".

1. For each head (every layer), the share of its high-confidence attention -- weights above a
   threshold (0.1 here) -- whose key is amino acid b: ``p_head[b] = n_high[b] / sum_b n_high[b]``.
   Queries are all real tokens; high weights landing on excluded tokens (specials, X B Z U O)
   are left out of the shares and reported separately.
2. The 20 x 20 Pearson correlation between amino acids of these shares across heads: two amino
   acids are "similar" when the same heads attend to both.
3. The off-diagonal lower triangle of that matrix correlated with BLOSUM62's (the paper reports
   r = 0.73 for TAPE's BERT and ~0 for a randomly initialised one).
Heads without any high-confidence weight on a standard amino acid are dropped (counted).  With
fewer than ``MIN_HEADS`` heads left the correlation across heads is undefined (or a trivial +-1)
and the method is skipped: :func:`skip_reason` says why in one line.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from protperf.analysis.blosum import compare_with_blosum, random_permutations
from protperf.analysis.residues import AMINO_ACIDS

MIN_HEADS = 3  # a Pearson correlation across heads needs at least 3 of them


def attention_shares(counts: np.ndarray) -> pd.DataFrame:
    """counts: (layers, heads, 20) high-confidence weights by key amino acid.

    Returns a (heads kept, 20) DataFrame of shares, indexed by (layer, head), columns
    ``AMINO_ACIDS``; heads with no such weight are dropped.
    """
    counts = np.asarray(counts, dtype=np.float64)
    layers, heads = counts.shape[:2]
    flat = counts.reshape(layers * heads, len(AMINO_ACIDS))
    index = pd.MultiIndex.from_product([range(layers), range(heads)], names=["layer", "head"])
    frame = pd.DataFrame(flat, index=index, columns=list(AMINO_ACIDS))
    frame = frame[frame.sum(axis=1) > 0]
    return frame.div(frame.sum(axis=1), axis=0)


def amino_acid_correlation(shares: pd.DataFrame) -> pd.DataFrame:
    """(heads, 20) shares -> (20, 20) Pearson correlation between amino acids across heads.

    NaN for an amino acid whose share is the same in every head (or with fewer than 2 heads).
    """
    return shares.corr(method="pearson")


def vig_similarity(
    counts: np.ndarray, n_permutations: int = 1000, seed: int = 0
) -> tuple[pd.DataFrame, dict]:
    """Steps 1-3: returns (the 20 x 20 correlation matrix, its comparison with BLOSUM62).

    The comparison dict holds the keys of :func:`compare_with_blosum` (the paper's number is
    ``pearson_offdiag``) plus ``heads_used`` and ``heads_dropped``.
    """
    shares = attention_shares(counts)
    correlation = amino_acid_correlation(shares)
    if len(shares) < MIN_HEADS:  # no correlation across fewer than 3 heads
        correlation.loc[:, :] = np.nan
    perms = random_permutations(n_permutations, seed=seed) if n_permutations > 0 else None
    summary = compare_with_blosum(correlation.to_numpy(), permutations=perms)
    layers, heads = np.asarray(counts).shape[:2]
    summary["heads_used"] = len(shares)
    summary["heads_dropped"] = layers * heads - len(shares)
    return correlation, summary


def skip_reason(summary: dict, threshold: float) -> str | None:
    """One line saying why :func:`vig_similarity` gave no correlation (None if it gave one)."""
    if np.isfinite(summary.get("pearson_offdiag", np.nan)):
        return None
    used, total = summary["heads_used"], summary["heads_used"] + summary["heads_dropped"]
    if used < MIN_HEADS:
        return (f"skipped: {used} of {total} heads have attention weights above {threshold} on "
                f"amino acids; the correlation across heads needs at least {MIN_HEADS} (a model "
                "with more heads, shorter proteins or a lower vig_threshold)")
    return (f"skipped: fewer than 3 amino-acid pairs have a defined correlation across the "
            f"{used} heads (the share of most amino acids is the same in every head)")
