"""Attention library: exact softmax and Performer (FAVOR+) attention.

Imports nothing else of protperf but :mod:`protperf.errors`. The math lives in ``ops/``
(feature maps, bidirectional and causal linear attention per backend, one-token recurrent
steps, exact SDPA, segments), the explicit O(L^2) attention weights in ``weights.py`` (for
analysis); ``backends.py`` picks the kernel a layer runs (one branch point), ``performer.py``
holds the Performer kernels (and the one-token step), ``layer.py`` is the multi-head module
(``forward``, the decoding ``step`` and the ``attention_weights`` it applies; imported on first
use, so reading a config needs no torch).
"""

from typing import TYPE_CHECKING

from protperf.attention.config import ATTENTION_KINDS, BACKENDS, FEATURE_TYPES, AttentionConfig

if TYPE_CHECKING:
    from protperf.attention.layer import MultiHeadAttention


def __getattr__(name: str):
    """``MultiHeadAttention`` is imported on first use: reading a config needs no torch."""
    if name == "MultiHeadAttention":
        from protperf.attention.layer import MultiHeadAttention

        return MultiHeadAttention
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ATTENTION_KINDS",
    "BACKENDS",
    "FEATURE_TYPES",
    "AttentionConfig",
    "MultiHeadAttention",
]
