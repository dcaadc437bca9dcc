"""Performer attention of projected heads: a feature map, then a linear-attention kernel.

``performer_attention`` is the whole computation of one layer's heads for the Performer
modes of ``backends.attention_mode`` (``bidirectional``, ``loop``, ``scan``, ``fla``);
``performer_step`` is its recurrent form for one new token (decoding). Both take their
features from ``ops.feature_maps.performer_feature_maps``, the one place that tells softmax
from ReLU features.

Precision policy under bf16 autocast: feature exponents, stabilizers, exp, the scan states,
the decay factors and the final division by the normalizer run in float32; the feature
tensors, values and the attention matmuls take bfloat16 (fp32 accumulation inside the
matmuls), except on fla, which gets float32 inputs (its output would otherwise be rounded
to bf16 before the division). fp16 autocast runs all of it in float32; float64 inputs run in
float64 throughout.
"""

from __future__ import annotations

import torch

from protperf.attention.backends import compute_dtype
from protperf.attention.ops.causal_fla import gated_causal_attention_unnormalized
from protperf.attention.ops.causal_loop import causal_linear_attention_unnormalized
from protperf.attention.ops.causal_scan import causal_scan_attention_unnormalized
from protperf.attention.ops.feature_maps import performer_feature_maps
from protperf.attention.ops.linear import (
    augment_values,
    bidirectional_unnormalized,
    normalize,
    segmented_bidirectional_unnormalized,
)
from protperf.attention.ops.recurrent import RecurrentState, recurrent_favor_step


def performer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    projection: torch.Tensor | None,
    mode: str,
    kernel: str,
    chunk_size: int = 64,
    relu_eps: float = 1e-3,
    favorpp: bool = False,
    key_mask: torch.Tensor | None = None,
    segment_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """FAVOR+ softmax or ReLU attention: q, k (B, H, L, d), v (B, H, L, dv) -> (B, H, L, dv).

    projection: (m, d) random features (None: ReLU without projection); mode:
    ``bidirectional``, ``loop``, ``scan`` or ``fla`` (``backends.attention_mode``); kernel:
    ``softmax`` or ``relu``; chunk_size: C of the causal kernels; key_mask, segment_ids:
    (B, L) or None. Returns v's dtype.
    """
    out_dtype, low = v.dtype, compute_dtype(v)
    q_prime, k_prime, log_scale = performer_feature_maps(
        q, k, projection, kernel, key_mask, causal_keys=mode != "bidirectional",
        relu_eps=relu_eps, favorpp=favorpp, segment_ids=segment_ids)
    with torch.autocast(device_type=v.device.type, enabled=False):
        v_aug = augment_values(v.to(low or q_prime.dtype))
        if mode == "bidirectional":
            q_low, k_low = q_prime.to(v_aug.dtype), k_prime.to(v_aug.dtype)
            if segment_ids is None:
                out = bidirectional_unnormalized(q_low, k_low, v_aug)
            else:
                out = segmented_bidirectional_unnormalized(q_low, k_low, v_aug, segment_ids)
        elif mode == "loop":
            out = causal_linear_attention_unnormalized(q_prime, k_prime, v_aug, log_scale,
                                                       chunk_size)
        elif mode == "scan":
            out = causal_scan_attention_unnormalized(q_prime, k_prime, v_aug, log_scale,
                                                     chunk_size, segment_ids, low)
        elif mode == "fla":
            out = gated_causal_attention_unnormalized(q_prime, k_prime, v_aug, log_scale,
                                                      segment_ids)
        else:
            raise ValueError(f"mode must be bidirectional, loop, scan or fla, got {mode!r}")
        return normalize(out).to(out_dtype)


def performer_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    state: RecurrentState,
    projection: torch.Tensor | None,
    kernel: str,
    relu_eps: float = 1e-3,
) -> torch.Tensor:
    """Causal Performer attention of the newest token, updating ``state`` in place.

    q, k: (B, H, 1, d), v: (B, H, 1, dv) -> (B, H, 1, dv) in v's dtype; computed in the
    state's dtype (float32, or float64 for float64 states). Equals the last position of
    ``performer_attention`` over the whole prefix, up to rounding.
    """
    dtype = state.sums.dtype
    projection = None if projection is None else projection.to(dtype)
    q_prime, k_prime, log_scale = performer_feature_maps(
        q.to(dtype), k.to(dtype), projection, kernel, causal_keys=True, relu_eps=relu_eps)
    return recurrent_favor_step(q_prime, k_prime, log_scale, v.to(dtype), state).to(v.dtype)
