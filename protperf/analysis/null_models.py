"""The random-initialisation floor: what the analysis reports for models that learned nothing.

A correlation with BLOSUM62 means little until it is compared with what the same architecture
gives before training, on the same proteins.  The Mantel test of :mod:`protperf.analysis.blosum`
shuffles amino-acid labels, so it assumes that a model that learned nothing treats the 20 amino
acids as exchangeable.  They are not: residue frequencies differ (rare W and C have the most
negative BLOSUM62 rows), heads attend to the query itself (the diagonal) and to neighbours
(local sequence composition), and all heads of a layer share one embedding.  On random tiny
models about 8 % of heads get a Mantel p < 0.05 (expected: 5 %).

So the analysis also runs ``null_models`` freshly initialised copies of the architecture (seeds
``seed + 1 ...``) over the same proteins and reports, beside each headline number, the floor:
the 95th percentile of that number over the random models.  Per head, the p-value against
the random initialisations pools the r of every head of every random model (they are the
draws of "a head that learned nothing" for this architecture and data):

    p_random_init = (1 + #{null head r >= r}) / (1 + number of null heads)

and a head's q-value is the Benjamini-Hochberg q of max(Mantel p, p_random_init), a valid
p-value whenever either one is.  Its smallest value is 1 / (1 + null_models x heads).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from protperf.model.transformer import ProteinLanguageModel

FLOOR_PERCENTILE = 95.0


def random_init_like(model: nn.Module, seed: int) -> nn.Module:
    """A freshly initialised :class:`ProteinLanguageModel` with ``model``'s architecture, dtype
    and device (random features redrawn too), built from ``seed`` without touching the global
    random state."""
    if not isinstance(model, ProteinLanguageModel):
        raise ValueError(
            f"null_models needs a ProteinLanguageModel to re-initialise, got "
            f"{type(model).__name__}; set null_models=0"
        )
    parameter = next(model.parameters())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = ProteinLanguageModel(model.config, causal=model.causal)
    return fresh.to(device=parameter.device, dtype=parameter.dtype).eval()


def null_p_values(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """One-sided empirical p-values of each observed value against the null sample:
    (1 + #{null >= observed}) / (1 + len(null)); NaN where observed is NaN (NaN null dropped)."""
    observed = np.asarray(observed, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    exceed = (null[None, :] >= observed[:, None] - 1e-12).sum(axis=1)
    return np.where(np.isfinite(observed), (1 + exceed) / (1 + len(null)), np.nan)


def floor(values: list[float] | np.ndarray) -> float | None:
    """The FLOOR_PERCENTILE percentile of the finite values (None if there are none)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.percentile(values, FLOOR_PERCENTILE)) if len(values) else None


def calibrate_heads(
    table: pd.DataFrame, null_head_r: np.ndarray, column: str = "pearson_offdiag"
) -> pd.DataFrame:
    """Add ``{column}_p_random_init`` to the head rows of a :func:`head_correlations` table and
    make ``{column}_q`` the BH q-value of max(Mantel p, p_random_init) over the heads.

    null_head_r: (N,) the ``column`` r of every head of every random model.
    """
    table = table.copy()
    heads = (table["kind"] == "head").to_numpy()
    p_random = np.full(len(table), np.nan)
    p_random[heads] = null_p_values(table.loc[heads, column].to_numpy(), null_head_r)
    table[f"{column}_p_random_init"] = p_random
    combined = p_random[heads]
    if f"{column}_p" in table:
        combined = np.fmax(combined, table.loc[heads, f"{column}_p"].to_numpy(dtype=np.float64))
    q = np.full(len(table), np.nan)
    finite = np.isfinite(combined)
    if finite.any():
        head_q = np.full(len(combined), np.nan)
        head_q[finite] = stats.false_discovery_control(combined[finite])
        q[heads] = head_q
    table[f"{column}_q"] = q
    return table
