"""Shared test inputs and normalized wrappers over the attention ops (float64 by default)."""

from __future__ import annotations

import torch

from protperf.attention import AttentionConfig
from protperf.attention.backends import attention_mode
from protperf.attention.ops.causal_scan import causal_scan_attention_unnormalized
from protperf.attention.ops.linear import augment_values, bidirectional_unnormalized, normalize


def random_features(length=37, m=16, dv=8, seed=0):
    """q', k' (2, 3, L, m) in [0, 1), v (2, 3, L, dv), and a causal s (running max, jumps)."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.rand(2, 3, length, m, generator=gen, dtype=torch.float64)
    k = torch.rand(2, 3, length, m, generator=gen, dtype=torch.float64)
    v = torch.randn(2, 3, length, dv, generator=gen, dtype=torch.float64)
    s = torch.cummax(5.0 * torch.randn(2, 3, length, generator=gen, dtype=torch.float64), -1)
    return q, k, v, s.values


def bidirectional_linear_attention(q_prime, k_prime, v):
    """D^-1 Q' (K'^T V) through the library's ops."""
    return normalize(bidirectional_unnormalized(q_prime, k_prime, augment_values(v)))


def causal_linear_attention(q_prime, k_prime, v, chunk_size, key_log_scale=None):
    """Normalized causal linear attention through the chunked scan kernel."""
    unnormalized = causal_scan_attention_unnormalized(q_prime, k_prime, augment_values(v),
                                                      key_log_scale, chunk_size)
    return normalize(unnormalized)


def favor_attention(q, k, v, projection, kernel, causal, key_mask=None, chunk_size=64,
                    relu_eps=1e-3, favorpp=False, segment_ids=None, backend="torch"):
    """Performer attention of raw heads through the kernel a layer of ``backend`` would run."""
    config = performer_config(kernel, chunk_size, relu_eps, favorpp, backend)
    kernel_fn = attention_mode(config, causal, q, segment_ids)
    return kernel_fn(q, k, v, projection, config, key_mask, segment_ids)


def performer_config(kernel, chunk_size=64, relu_eps=1e-3, favorpp=False, backend="torch"):
    """The AttentionConfig of a Performer kernel with these settings."""
    return AttentionConfig(kind=f"favor_{kernel}", relu_eps=relu_eps, backend=backend,
                           chunk_size=chunk_size,
                           feature_type="favorpp" if favorpp else "orthogonal")
