"""Attention library: exact softmax and Performer (FAVOR+) attention. Imports nothing else of protperf."""

from protperf.attention.config import ATTENTION_KINDS, AttentionConfig
from protperf.attention.layer import MultiHeadAttention

__all__ = ["ATTENTION_KINDS", "AttentionConfig", "MultiHeadAttention"]
