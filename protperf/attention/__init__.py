"""Attention library: exact softmax and Performer (FAVOR+) attention.

Imports nothing else of protperf. The math lives in ``ops/`` (feature maps, bidirectional
and causal linear attention per backend, exact SDPA, segments), the O(L^2) references in
``reference.py`` (tests, benchmarks, analysis); ``performer.py`` composes a feature map with
a kernel, ``backends.py`` picks the causal kernel, ``layer.py`` is the multi-head module.
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
