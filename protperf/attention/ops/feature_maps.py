"""Feature maps of Performer attention from raw heads: the FAVOR+ softmax and ReLU kernels.

Shapes: ``q, k: (B, H, L, d)`` raw head projections, ``projection: (m, d)``, ``key_mask:
(B, L)`` bool (True = real token), ``segment_ids: (B, L)`` or None. Returns features
``(B, H, L, m)`` and, for causal softmax keys, the key log-scale ``s: (B, H, L)``.

Precision: feature exponents, stabilizers and exp run in float32 (float64 for float64
input) with autocast off, whatever the autocast dtype: an exponent of size ~10-100 rounded to
bfloat16 would be off by ~0.05-0.5, a 5-50% error of the feature. The features themselves are
in (0, 1/sqrt(m)] and may then be cast to bfloat16 for the attention matmuls.
"""

from __future__ import annotations

import torch

from protperf.attention.ops.features import (
    causal_key_stabilizer,
    favorpp_parameter,
    global_key_stabilizer,
    positive_features,
    query_stabilizer,
    relu_features,
    scale_for_softmax,
    softmax_feature_logits,
)
from protperf.attention.ops.fused_features import relu_features_fused, softmax_features

KERNELS = ("softmax", "relu")


def performer_feature_maps(
    q: torch.Tensor,
    k: torch.Tensor,
    projection: torch.Tensor | None,
    kernel: str,
    key_mask: torch.Tensor | None = None,
    causal_keys: bool = False,
    relu_eps: float = 1e-3,
    favorpp: bool = False,
    segment_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Feature maps of queries and keys in float32 (float64 for float64 input).

    q, k: (B, H, L, d) raw head projections; projection: (m, d) (None: ReLU no-projection);
    kernel: ``softmax`` or ``relu``; key_mask: (B, L) bool, True = real token (padding keys
    get zero features); segment_ids: (B, L) or None (key stabilizers restart per segment).
    Returns (q', k', s): (B, H, L, m) each, and for softmax with ``causal_keys`` the
    per-position key log-scale s (B, H, L) (otherwise None: softmax keys share one
    stabilizer per (batch, head[, segment]), so q'_i.k'_j ratios are exact).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be 'softmax' or 'relu', got {kernel!r}")
    if kernel == "softmax":
        return softmax_feature_maps(q, k, projection, key_mask, causal_keys, favorpp,
                                    segment_ids)
    q_prime, k_prime = relu_feature_maps(q, k, projection, key_mask, relu_eps)
    return q_prime, k_prime, None


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def softmax_feature_maps(
    q: torch.Tensor,
    k: torch.Tensor,
    projection: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    causal_keys: bool = False,
    favorpp: bool = False,
    segment_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """FAVOR+ (or FAVOR++) softmax features (q', k', s) in float32; see performer_feature_maps."""
    work = _work_dtype(q)
    with torch.autocast(device_type=q.device.type, enabled=False):
        q, k = scale_for_softmax(q.to(work)), scale_for_softmax(k.to(work))
        proj = projection.to(work)
        if not favorpp and not proj.requires_grad:
            # FAVOR+ with the usual fixed projection: hand-written backward, fewest passes over
            # (B, H, L, m). Queries drop |q|^2/2 (one per-row constant, it cancels like the
            # stabilizer); padding keys already get zero features.
            q_prime, _ = softmax_features(q, proj, "row", subtract_half_sq=False)
            k_prime, key_log_scale = softmax_features(
                k, proj, "causal" if causal_keys else "global", key_mask=key_mask,
                segment_ids=segment_ids)
            return q_prime, k_prime, key_log_scale
        # FAVOR++ or a trainable projection: autograd of the reference formulas
        a = favorpp_parameter(q, k, key_mask) if favorpp else None
        q_logits = softmax_feature_logits(q, proj, a)
        k_logits = softmax_feature_logits(k, proj, a)
        q_prime = positive_features(q_logits, query_stabilizer(q_logits))
        key_log_scale = None
        if causal_keys:
            key_log_scale = causal_key_stabilizer(k_logits, key_mask, segment_ids)
            k_prime = positive_features(k_logits, key_log_scale.unsqueeze(-1))
        else:
            stabilizer = global_key_stabilizer(k_logits, key_mask, segment_ids)
            k_prime = positive_features(k_logits, stabilizer)
        return q_prime, _masked_keys(k_prime, key_mask), key_log_scale


def relu_feature_maps(
    q: torch.Tensor,
    k: torch.Tensor,
    projection: torch.Tensor | None,
    key_mask: torch.Tensor | None = None,
    relu_eps: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized-attention ReLU features (q', k') in float32; see performer_feature_maps."""
    work = _work_dtype(q)
    with torch.autocast(device_type=q.device.type, enabled=False):
        q, k = scale_for_softmax(q.to(work)), scale_for_softmax(k.to(work))
        proj = None if projection is None else projection.to(work)
        if proj is not None and not proj.requires_grad:  # hand-written backward, masks keys
            q_prime = relu_features_fused(q, proj, relu_eps)
            return q_prime, relu_features_fused(k, proj, relu_eps, key_mask)
        q_prime, k_prime = relu_features(q, proj, relu_eps), relu_features(k, proj, relu_eps)
        return q_prime, _masked_keys(k_prime, key_mask)


def _masked_keys(k_prime: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    """Zero features for padding keys (key_mask False)."""
    if key_mask is None:
        return k_prime
    return k_prime * key_mask[:, None, :, None].to(k_prime.dtype)
