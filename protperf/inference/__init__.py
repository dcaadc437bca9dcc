"""Using a trained model: embeddings, variant-effect scores and generation.

    from protperf.inference import load_model, Embedder, Scorer, Sampler
    model = load_model("last.ckpt")          # or an export directory (protperf-export)
    Embedder(model, layers=[-1], include=["mean"]).embed_one("MKTAYIAK").mean[2]

Nothing here imports Lightning; ``load_model`` is :func:`protperf.checkpoint.load.load_model`.
"""

from protperf.checkpoint.load import load_model
from protperf.errors import InferenceInputError
from protperf.inference.embed import Embedder, ProteinEmbedding
from protperf.inference.embed_io import EmbeddingWriter, load_embedding, load_means, read_index
from protperf.inference.generate import Sampler, SamplingConfig
from protperf.inference.mutations import Substitution, parse_mutant, read_variants
from protperf.inference.score import Scorer, spearman_by_method

__all__ = [
    "Embedder", "EmbeddingWriter", "InferenceInputError", "ProteinEmbedding", "Sampler",
    "SamplingConfig", "Scorer", "Substitution", "load_embedding", "load_means", "load_model",
    "parse_mutant", "read_index", "read_variants", "spearman_by_method",
]
