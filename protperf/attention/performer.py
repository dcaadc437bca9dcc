"""Performer attention kernels of projected heads, and the one-token decoding step.

Every kernel takes ``(q, k, v, projection, config, key_mask, segment_ids)``: q, k (B, H, L, d)
raw heads, v (B, H, L, dv), projection (m, d) or None (ReLU without projection), the layer's
``AttentionConfig`` whole, key_mask / segment_ids (B, L) or None; it returns (B, H, L, dv)
in v's dtype. ``backends.attention_mode`` picks one:

- ``favor_linear`` / ``favor_chunked``: bidirectional / causal FAVOR+ as one autograd
  function each that recomputes the features in backward (``ops/favor_linear.py``,
  ``ops/favor_chunked.py``): CPU, float32/float64, no segments, fixed FAVOR+ projection;
- ``favor_bidirectional``, ``favor_scan``, ``favor_fla``: features from ``ops/feature_maps``
  (kept for backward), then two matmuls (per segment via tiles), the loop-free chunked scan,
  or fla's Triton kernel: GPUs, bf16 autocast, segments, FAVOR++, no-projection ReLU.

Precision policy under bf16 autocast: feature exponents, stabilizers, exp, the scan states,
the decay factors and the final division by the normalizer run in float32; the feature
tensors, values and the attention matmuls take bfloat16 (fp32 accumulation inside the
matmuls), except on fla, which gets float32 inputs (its output would otherwise be rounded
to bf16 before the division). fp16 autocast runs all of it in float32; float64 inputs run in
float64 throughout.
"""

from __future__ import annotations

import torch

from protperf.attention.config import AttentionConfig
from protperf.attention.ops.causal_fla import gated_causal_attention_unnormalized
from protperf.attention.ops.causal_scan import causal_scan_attention_unnormalized
from protperf.attention.ops.favor_chunked import favor_chunked_attention
from protperf.attention.ops.favor_linear import favor_linear_attention
from protperf.attention.ops.feature_maps import performer_feature_maps
from protperf.attention.ops.linear import (
    augment_values,
    bidirectional_unnormalized,
    normalize,
    segmented_bidirectional_unnormalized,
)
from protperf.attention.ops.recurrent import RecurrentState, recurrent_favor_step

Heads = torch.Tensor


def low_precision_dtype(device_type: str) -> torch.dtype | None:
    """bfloat16 when bf16 autocast is active for the device type, else None (float32).

    float16 autocast keeps Performer attention in float32: the gradient of the division by
    a small normalizer (num / D^2) overflows float16's range (max 65504), not bfloat16's.
    """
    if not torch.is_autocast_enabled(device_type):
        return None
    dtype = torch.get_autocast_dtype(device_type)
    return dtype if dtype == torch.bfloat16 else None


def compute_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The matmul dtype of Performer attention on heads x: bfloat16 under bf16 autocast
    (float64 heads excepted), else None (the features' float32/float64)."""
    return None if x.dtype == torch.float64 else low_precision_dtype(x.device.type)


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def favor_linear(q: Heads, k: Heads, v: Heads, projection: torch.Tensor,
                 config: AttentionConfig, key_mask=None, segment_ids=None,
                 grads_in_place: bool = False) -> torch.Tensor:
    """Bidirectional FAVOR+, features recomputed in backward (no segments). A projection that
    trains (attention transfer's ``qk_features``) takes the feature-keeping kernel.
    grads_in_place: q, k, v are the caller's own (``backends.attention_mode``)."""
    if projection.requires_grad:
        return favor_bidirectional(q, k, v, projection, config, key_mask, segment_ids)
    work = _work_dtype(v)
    with torch.autocast(device_type=v.device.type, enabled=False):
        out = favor_linear_attention(q.to(work), k.to(work), v.to(work), projection,
                                     config.feature_kernel, config.relu_eps, key_mask,
                                     grads_in_place=grads_in_place)
    return out.to(v.dtype)


def favor_chunked(q: Heads, k: Heads, v: Heads, projection: torch.Tensor,
                  config: AttentionConfig, key_mask=None, segment_ids=None,
                  grads_in_place: bool = False) -> torch.Tensor:
    """Causal FAVOR+, features recomputed in backward, blocks of batched chunks (no
    segments). A projection that trains takes the feature-keeping scan. grads_in_place: q,
    k, v are the caller's own (``backends.attention_mode``)."""
    if projection.requires_grad:
        return favor_scan(q, k, v, projection, config, key_mask, segment_ids)
    work = _work_dtype(v)
    with torch.autocast(device_type=v.device.type, enabled=False):
        out = favor_chunked_attention(q.to(work), k.to(work), v.to(work), projection,
                                      config.feature_kernel, config.relu_eps, key_mask,
                                      config.causal_chunk_size(q.shape[-1]),
                                      grads_in_place=grads_in_place)
    return out.to(v.dtype)


def favor_bidirectional(q, k, v, projection, config, key_mask=None, segment_ids=None):
    """Bidirectional FAVOR+ from kept features: two matmuls (per segment via tiles)."""
    return _from_features(q, k, v, projection, config, key_mask, segment_ids, "bidirectional")


def favor_scan(q, k, v, projection, config, key_mask=None, segment_ids=None):
    """Causal FAVOR+ from kept features through the loop-free chunked scan."""
    return _from_features(q, k, v, projection, config, key_mask, segment_ids, "scan")


def favor_fla(q, k, v, projection, config, key_mask=None, segment_ids=None):
    """Causal FAVOR+ from kept features through fla's chunk_simple_gla (CUDA)."""
    return _from_features(q, k, v, projection, config, key_mask, segment_ids, "fla")


def _from_features(q, k, v, projection, config, key_mask, segment_ids, form: str):
    """Features (``performer_feature_maps``), then the linear attention of ``form``."""
    out_dtype, low = v.dtype, compute_dtype(v)
    q_prime, k_prime, log_scale = performer_feature_maps(
        q, k, projection, config.feature_kernel, key_mask, causal_keys=form != "bidirectional",
        relu_eps=config.relu_eps, favorpp=config.feature_type == "favorpp",
        segment_ids=segment_ids)
    with torch.autocast(device_type=v.device.type, enabled=False):
        v_aug = augment_values(v.to(low or q_prime.dtype))
        if form == "bidirectional":
            q_low, k_low = q_prime.to(v_aug.dtype), k_prime.to(v_aug.dtype)
            if segment_ids is None:
                out = bidirectional_unnormalized(q_low, k_low, v_aug)
            else:
                out = segmented_bidirectional_unnormalized(q_low, k_low, v_aug, segment_ids)
        elif form == "scan":
            out = causal_scan_attention_unnormalized(
                q_prime, k_prime, v_aug, log_scale, config.causal_chunk_size(q.shape[-1]),
                segment_ids, low)
        else:
            out = gated_causal_attention_unnormalized(q_prime, k_prime, v_aug, log_scale,
                                                      segment_ids)
        return normalize(out).to(out_dtype)


def performer_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    state: RecurrentState,
    projection: torch.Tensor | None,
    config: AttentionConfig,
) -> torch.Tensor:
    """Causal Performer attention of the newest token, updating ``state`` in place.

    q, k: (B, H, 1, d), v: (B, H, 1, dv) -> (B, H, 1, dv) in v's dtype; computed in the
    state's dtype (float32, or float64 for float64 states). Equals the last position of the
    causal kernels over the whole prefix, up to rounding.
    """
    dtype = state.sums.dtype
    projection = None if projection is None else projection.to(dtype)
    q_prime, k_prime, log_scale = performer_feature_maps(
        q.to(dtype), k.to(dtype), projection, config.feature_kernel, causal_keys=True,
        relu_eps=config.relu_eps)
    return recurrent_favor_step(q_prime, k_prime, log_scale, v.to(dtype), state).to(v.dtype)
