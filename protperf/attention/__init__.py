"""Attention library: exact softmax and Performer (FAVOR+) attention.

Imports nothing else of protperf. Math in features.py (random matrices, feature maps),
favor.py (bidirectional / chunked causal linear attention), exact.py (SDPA); layer.py is the
multi-head module.
"""

from protperf.attention.config import ATTENTION_KINDS, FEATURE_TYPES, AttentionConfig
from protperf.attention.layer import MultiHeadAttention

__all__ = ["ATTENTION_KINDS", "FEATURE_TYPES", "AttentionConfig", "MultiHeadAttention"]
