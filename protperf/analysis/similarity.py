"""Accumulate attention over a data set into 20 x 20 amino-acid matrices, and normalize them.

Normalization (all matrices are indexed [query amino acid a, key amino acid b] in
``AMINO_ACIDS`` order; logs are base 2, like BLOSUM's half-bit units up to a scale factor):

* ``log_odds`` (default): observed over expected, ``log2(S_ab / E_ab)``, where E is the
  aggregate U of *uniform* attention over the same allowed keys (same proteins, same causal
  mask) rescaled by iterative proportional fitting to the query and key marginals of S.  This is
  BLOSUM's construction (observed pair frequency over the frequency expected by chance) with
  "chance" meaning an attention that ignores residues: it is exactly 0 for uniform attention,
  for attention by position only, and for a head that prefers some key residue whatever the
  query (a proline-loving head); only a dependence of the key residue on the query residue
  moves entries away from 0.
* ``marginal_log_odds``: the textbook form ``log2(p_ab / (p_a. p_.b))`` with p = S / sum(S).
  Confounded: attention only pairs residues of the same protein, and residues co-occur by
  protein composition (hydrophobic with hydrophobic, ...), so even uniform attention scores
  Pearson r = 0.30 off-diagonal (0.72 with the diagonal) against BLOSUM62 on 500 proteins of the
  bundled sample.  Kept for comparison.
* ``uniform``: ``log2(S_ab / U_ab)`` with U the aggregate of uniform attention over the same
  allowed keys (same sequences, same causal mask).  It corrects for residue frequencies and
  positions but keeps key preferences (a proline-loving head shows a bright P column).
* ``mean``: ``S_ab / N_ab``, the mean attention weight per (query, key) pair of those residues.

Entries for residue pairs that never occur in the data are NaN (and dropped from correlations);
an observed pair that received exactly zero attention is -inf under the log normalizations.
Matrices are symmetrized, (M + M^T) / 2 (see :func:`symmetrize`), before they are compared with
the symmetric BLOSUM62.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from protperf.analysis.aggregate import (
    aggregate_attention_rows,
    aggregate_linear,
    attention_row_blocks,
    high_attention_counts,
    pair_counts,
    uniform_aggregate,
)
from protperf.analysis.residues import NUM_AMINO_ACIDS, TokenTally, residue_index
from protperf.attention.weights import implicit_weight_rows

NORMALIZATIONS = ("log_odds", "marginal_log_odds", "uniform", "mean")


def fit_marginals(
    baseline: np.ndarray, sums: np.ndarray, iterations: int = 500, tolerance: float = 1e-10
) -> np.ndarray:
    """Iterative proportional fitting: ``baseline`` (20, 20) scaled by row and column factors
    so that its row and column sums equal those of ``sums`` (..., 20, 20).

    Returns E with the shape of ``sums``; stops when the marginals agree to ``tolerance``
    (relative to the total).
    """
    sums = np.asarray(sums, dtype=np.float64)
    target_rows, target_cols = sums.sum(axis=-1), sums.sum(axis=-2)
    scale = np.maximum(sums.sum(axis=(-2, -1)), np.finfo(float).tiny)[..., None]
    expected = np.broadcast_to(np.asarray(baseline, dtype=np.float64), sums.shape).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(iterations):
            rows = expected.sum(axis=-1)
            expected *= np.where(rows > 0, target_rows / rows, 0.0)[..., None]
            cols = expected.sum(axis=-2)
            expected *= np.where(cols > 0, target_cols / cols, 0.0)[..., None, :]
            if np.all(np.abs(expected.sum(axis=-1) - target_rows) <= tolerance * scale):
                break
    return expected


def log_odds(sums: np.ndarray, uniform: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """sums: (..., 20, 20); uniform: (20, 20) -> log2(S / E), E = :func:`fit_marginals`
    (uniform, S); NaN where counts (20, 20) == 0 or E == 0."""
    expected = fit_marginals(uniform, sums)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.log2(np.asarray(sums, dtype=np.float64) / expected)
    result = np.where(expected > 0, result, np.nan)
    return _unobserved_to_nan(result, counts)


def marginal_log_odds(sums: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """sums: (..., 20, 20) -> log2(p_ab / (p_a. p_.b)); NaN where counts (20, 20) == 0."""
    sums = np.asarray(sums, dtype=np.float64)
    total = sums.sum(axis=(-2, -1), keepdims=True)
    rows = sums.sum(axis=-1, keepdims=True)
    cols = sums.sum(axis=-2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.log2(sums * total / (rows * cols))
    return _unobserved_to_nan(result, counts)


def relative_to_uniform(sums: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """sums: (..., 20, 20); uniform: (20, 20) -> log2(S / U), NaN where U == 0."""
    uniform = np.asarray(uniform, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.log2(np.asarray(sums, dtype=np.float64) / uniform)
    return _unobserved_to_nan(result, uniform)


def mean_attention(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """sums: (..., 20, 20); counts: (20, 20) pairs -> S / N, NaN where N == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.asarray(sums, dtype=np.float64) / np.asarray(counts, dtype=np.float64)
    return _unobserved_to_nan(result, counts)


def _unobserved_to_nan(result: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
    if counts is not None:
        result = np.where(np.asarray(counts) > 0, result, np.nan)
    return result


def symmetrize(matrix: np.ndarray) -> np.ndarray:
    """(..., 20, 20) -> (M + M^T) / 2; where one of the two entries is NaN (a pair seen in one
    order only, as happens with causal attention), the other one."""
    transposed = np.swapaxes(matrix, -1, -2)
    with np.errstate(invalid="ignore"):
        mean = (matrix + transposed) / 2
    return np.where(np.isnan(matrix), transposed, np.where(np.isnan(transposed), matrix, mean))


@dataclass
class SimilarityTotals:
    """Everything accumulated over a data set (float64 numpy; memory independent of its size).

    sums: (layers, heads, 20, 20) attention mass from query residue a to key residue b.
    standard_queries: number of query positions holding a standard amino acid; each sends a total
        attention of 1, so ``standard_queries - sums.sum((-2, -1))`` is the mass those queries
        sent to excluded tokens (specials, X B Z U O).
    pair_counts, uniform: (20, 20) pairs N_ab and the uniform-attention aggregate U_ab.
    vig_counts: (layers, heads, 20) attention weights above the threshold, by key amino acid;
    vig_high: (layers, heads) all weights above the threshold (any key).
    """

    num_layers: int
    num_heads: int
    causal: bool
    vig_threshold: float = 0.1
    sums: np.ndarray = field(init=False)
    standard_queries: int = field(init=False, default=0)
    pair_counts: np.ndarray = field(init=False)
    uniform: np.ndarray = field(init=False)
    vig_counts: np.ndarray = field(init=False)
    vig_high: np.ndarray = field(init=False)
    tally: TokenTally = field(init=False, default_factory=TokenTally)

    def __post_init__(self) -> None:
        shape = (self.num_layers, self.num_heads)
        self.sums = np.zeros(shape + (NUM_AMINO_ACIDS, NUM_AMINO_ACIDS))
        self.pair_counts = np.zeros((NUM_AMINO_ACIDS, NUM_AMINO_ACIDS))
        self.uniform = np.zeros((NUM_AMINO_ACIDS, NUM_AMINO_ACIDS))
        self.vig_counts = np.zeros(shape + (NUM_AMINO_ACIDS,))
        self.vig_high = np.zeros(shape)

    def similarity(self, normalization: str = "log_odds", symmetric: bool = True) -> np.ndarray:
        """(layers, heads, 20, 20) normalized per head (see the module docstring)."""
        return self._normalize(self.sums, normalization, symmetric)

    def pooled_similarity(
        self, normalization: str = "log_odds", symmetric: bool = True, per_layer: bool = False
    ) -> np.ndarray:
        """Sums pooled over all heads and layers -> (20, 20), or per layer -> (layers, 20, 20)."""
        pooled = self.sums.sum(axis=1) if per_layer else self.sums.sum(axis=(0, 1))
        return self._normalize(pooled, normalization, symmetric)

    def excluded_key_mass(self) -> np.ndarray:
        """(layers, heads): share of standard queries' attention landing on excluded tokens."""
        if self.standard_queries == 0:
            return np.full((self.num_layers, self.num_heads), np.nan)
        return 1.0 - self.sums.sum(axis=(-2, -1)) / self.standard_queries

    def _normalize(self, sums: np.ndarray, normalization: str, symmetric: bool) -> np.ndarray:
        if normalization == "log_odds":
            result = log_odds(sums, self.uniform, self.pair_counts)
        elif normalization == "marginal_log_odds":
            result = marginal_log_odds(sums, self.pair_counts)
        elif normalization == "uniform":
            result = relative_to_uniform(sums, self.uniform)
        elif normalization == "mean":
            result = mean_attention(sums, self.pair_counts)
        else:
            raise ValueError(
                f"normalization={normalization!r} is not one of {', '.join(NORMALIZATIONS)}"
            )
        return symmetrize(result) if symmetric else result


class SimilarityAccumulator:
    """Feeds batches of attention (or Performer features) into :class:`SimilarityTotals`.

    Call :meth:`add_batch` once per batch of sequences, then for each layer either
    :meth:`add_attention` (exact attention, (B, H, L, L)) or :meth:`add_features`
    (Performer features q', k', the linear-time aggregate).

    block_size: query rows per block (explicit path) / positions per block (causal linear path).
    vig: also count weights above ``vig_threshold`` (Vig et al. 2020).  For Performers this
        forms (B, H, chunk, L) blocks of the implicit attention, O(L^2 m) time.
    """

    def __init__(
        self,
        num_layers: int,
        num_heads: int,
        causal: bool,
        block_size: int = 256,
        vig: bool = True,
        vig_threshold: float = 0.1,
    ) -> None:
        self.totals = SimilarityTotals(num_layers, num_heads, causal, vig_threshold)
        self.block_size, self.vig = block_size, vig
        self._residues: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None

    def add_batch(self, tokens: torch.Tensor, attention_mask: torch.Tensor | None = None) -> None:
        """tokens: (B, L) ids; attention_mask: (B, L) bool, True at real tokens."""
        if attention_mask is None:
            attention_mask = torch.ones_like(tokens, dtype=torch.bool)
        self._mask = attention_mask.bool()
        self._residues = residue_index(tokens, self._mask)
        totals = self.totals
        totals.tally.update(tokens, self._mask)
        totals.standard_queries += int((self._residues >= 0).sum())
        totals.pair_counts += pair_counts(self._residues, self._mask, totals.causal).cpu().numpy()
        totals.uniform += uniform_aggregate(self._residues, self._mask, totals.causal).cpu().numpy()

    def add_attention(self, layer: int, attention: torch.Tensor) -> None:
        """attention: (B, H, L, L) rows summing to 1 over allowed keys, for the current batch."""
        residues = self._current(layer, attention.shape[0], attention.shape[-1], attention.shape[1])
        for start, rows in attention_row_blocks(attention, self.block_size):
            self._add_rows(layer, start, rows, residues)

    def add_attention_rows(self, layer: int, start: int, rows: torch.Tensor) -> None:
        """rows: (B, H, C, L) attention of query positions start..start+C of the current batch."""
        residues = self._current(layer, rows.shape[0], rows.shape[-1], rows.shape[1])
        if start < 0 or start + rows.shape[2] > rows.shape[-1]:
            raise ValueError(f"rows {start}..{start + rows.shape[2]} outside 0..{rows.shape[-1]}")
        self._add_rows(layer, start, rows, residues)

    def add_features(self, layer: int, q_features: torch.Tensor, k_features: torch.Tensor) -> None:
        """q_features, k_features: (B, H, L, m) Performer features of the current batch."""
        residues = self._current(
            layer, q_features.shape[0], q_features.shape[2], q_features.shape[1]
        )
        causal = self.totals.causal
        sums = aggregate_linear(
            q_features, k_features, residues, self._mask, causal, block_size=self.block_size
        )
        self.totals.sums[layer] += sums.double().cpu().numpy()
        if self.vig:
            blocks = implicit_weight_rows(
                q_features, k_features, self._mask, causal, self.block_size
            )
            for start, block in blocks:
                self._add_vig(layer, start, block, residues)

    def _current(self, layer: int, batch: int, length: int, heads: int) -> torch.Tensor:
        if self._residues is None:
            raise RuntimeError("call add_batch(tokens, attention_mask) before adding attention")
        if not 0 <= layer < self.totals.num_layers:
            raise ValueError(f"layer {layer} is outside 0..{self.totals.num_layers - 1}")
        if heads != self.totals.num_heads:
            raise ValueError(f"expected {self.totals.num_heads} heads, got {heads}")
        if tuple(self._residues.shape) != (batch, length):
            raise ValueError(
                f"attention is for (B, L) = {(batch, length)} but the current batch is "
                f"{tuple(self._residues.shape)}"
            )
        return self._residues

    def _add_rows(self, layer: int, start: int, rows: torch.Tensor, residues: torch.Tensor) -> None:
        query_residues = residues[:, start : start + rows.shape[2]]
        sums = aggregate_attention_rows(rows, query_residues, residues)
        self.totals.sums[layer] += sums.double().cpu().numpy()
        if self.vig:
            self._add_vig(layer, start, rows, residues)

    def _add_vig(self, layer: int, start: int, rows: torch.Tensor, residues: torch.Tensor) -> None:
        query_mask = self._mask[:, start : start + rows.shape[2]]
        counts, high = high_attention_counts(rows, query_mask, residues, self.totals.vig_threshold)
        self.totals.vig_counts[layer] += counts.cpu().numpy()
        self.totals.vig_high[layer] += high.cpu().numpy()
