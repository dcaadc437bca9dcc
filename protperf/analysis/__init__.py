"""Attention analysis: attention maps, amino-acid similarity matrices, BLOSUM62 comparison.

Math lives in pure modules (``aggregate``, ``similarity``, ``blosum``, ``vig``, ``embedding``);
``attention_maps`` / ``collect`` read the attention each layer applies (the layer's
``attention_weights`` / ``performer_features``) through hooks;
``plots`` draws figures; ``controls`` builds planted models whose attention follows BLOSUM62;
``curve`` runs the analysis over the checkpoints of one run.  Nothing here trains a model.
"""

from protperf.analysis.aggregate import aggregate_attention, aggregate_linear
from protperf.analysis.blosum import blosum62, compare_with_blosum, head_correlations
from protperf.analysis.embedding import embedding_similarity
from protperf.analysis.residues import AMINO_ACIDS, TokenTally, residue_index
from protperf.analysis.similarity import NORMALIZATIONS, SimilarityAccumulator, SimilarityTotals
from protperf.analysis.vig import vig_similarity

__all__ = [
    "AMINO_ACIDS",
    "NORMALIZATIONS",
    "SimilarityAccumulator",
    "SimilarityTotals",
    "TokenTally",
    "aggregate_attention",
    "aggregate_linear",
    "blosum62",
    "compare_with_blosum",
    "embedding_similarity",
    "head_correlations",
    "residue_index",
    "vig_similarity",
]
