"""Embedding similarity: cosine similarity of the 20 amino-acid token embeddings vs BLOSUM62.

Needs no data: it reads the model's input token embedding only.  It shows whether a model
learned any amino-acid similarity at all, which separates "the model learned nothing" from
"attention does not show it".  Statistics as for the attention methods
(:func:`protperf.analysis.blosum.compare_with_blosum`: Pearson / Spearman on the lower triangle,
Mantel permutation p-values).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from protperf.analysis.blosum import compare_with_blosum, random_permutations
from protperf.analysis.residues import AMINO_ACIDS
from protperf.data.alphabet import ALPHABET


def amino_acid_embeddings(model: nn.Module) -> np.ndarray:
    """The input token embedding rows of the 20 amino acids, (20, D) float64, in
    ``AMINO_ACIDS`` order (``model.token_embedding``: an ``nn.Embedding`` over the alphabet)."""
    embedding = getattr(model, "token_embedding", None)
    if not isinstance(embedding, nn.Embedding):
        raise ValueError(f"{type(model).__name__} has no token_embedding (nn.Embedding) to analyze")
    if embedding.num_embeddings != ALPHABET.vocab_size:
        raise ValueError(
            f"token_embedding has {embedding.num_embeddings} rows, the alphabet "
            f"{ALPHABET.vocab_size} tokens"
        )
    with torch.no_grad():
        rows = embedding.weight[torch.tensor(ALPHABET.standard_ids)]
    return rows.double().cpu().numpy()


def cosine_similarity(vectors: np.ndarray) -> np.ndarray:
    """vectors: (n, D) -> (n, n) cosine similarities; NaN in rows/columns of zero vectors."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = vectors / norms[:, None]
    return unit @ unit.T


def embedding_similarity(
    model: nn.Module, n_permutations: int = 1000, seed: int = 0
) -> tuple[pd.DataFrame, dict]:
    """(20 x 20 cosine similarity DataFrame, its comparison with BLOSUM62).

    The dict holds the keys of :func:`compare_with_blosum` (``pearson_offdiag`` ... with
    permutation ``_p`` if n_permutations > 0).
    """
    similarity = cosine_similarity(amino_acid_embeddings(model))
    frame = pd.DataFrame(similarity, index=list(AMINO_ACIDS), columns=list(AMINO_ACIDS))
    perms = random_permutations(n_permutations, seed=seed) if n_permutations > 0 else None
    return frame, compare_with_blosum(similarity, permutations=perms)
