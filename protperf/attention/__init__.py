"""Attention library: exact softmax and Performer (FAVOR+) attention.

Imports nothing else of protperf. The math lives in ``ops/`` (feature maps, bidirectional
and causal linear attention per backend, one-token recurrent steps, exact SDPA, segments),
the O(L^2) references in ``reference.py`` (tests, benchmarks, analysis); ``backends.py``
picks the mode a layer runs (exact, identity, bidirectional, loop, scan, fla),
``performer.py`` composes a feature map with the mode's kernel (and its one-token step),
``layer.py`` is the multi-head module (``forward`` and the decoding ``step``).
"""

from protperf.attention.config import ATTENTION_KINDS, BACKENDS, FEATURE_TYPES, AttentionConfig
from protperf.attention.layer import MultiHeadAttention

__all__ = [
    "ATTENTION_KINDS",
    "BACKENDS",
    "FEATURE_TYPES",
    "AttentionConfig",
    "MultiHeadAttention",
]
