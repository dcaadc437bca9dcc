"""Shared test inputs and normalized wrappers over the attention ops (float64 by default)."""

from __future__ import annotations

import torch

from protperf.attention.backends import TorchCausalKernel
from protperf.attention.ops.linear import augment_values, bidirectional_unnormalized, normalize
from protperf.attention.performer import PerformerAttention


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


def causal_linear_attention(q_prime, k_prime, v, chunk_size, key_log_scale=None, kernel=None):
    """Normalized causal linear attention through a causal kernel (default: the torch one)."""
    kernel = kernel or TorchCausalKernel(chunk_size)
    return normalize(kernel(q_prime, k_prime, augment_values(v), key_log_scale))


def favor_attention(q, k, v, projection, kernel, causal, key_mask=None, chunk_size=64,
                    relu_eps=1e-3, favorpp=False, segment_ids=None):
    """Performer attention of raw heads with the torch causal kernel."""
    performer = PerformerAttention(kernel, causal, relu_eps, favorpp,
                                   TorchCausalKernel(chunk_size) if causal else None)
    return performer(q, k, v, projection, key_mask, segment_ids)
