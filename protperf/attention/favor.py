"""Linear attention from feature maps: bidirectional, chunked causal, O(L^2) reference.

Shapes: ``q_prime, k_prime: (B, H, L, m)`` non-negative features, ``v: (B, H, L, dv)``,
``key_log_scale: (B, H, L)`` (see below). Outputs ``(B, H, L, dv)``.

The attention is A_ij = q'_i . k'_j exp(s_j - s_i) / sum_{allowed j} (same), where s (the
``key_log_scale``, default 0) is the per-position key stabilizer of causal mode: key j was
computed as exp(logit - s_j), so exp(s_j - s_i) puts all keys seen by query i back on query
i's common scale. With s non-decreasing these factors are <= 1 (no overflow), and the output
at position i depends on nothing after i.
"""

from __future__ import annotations

import torch

from protperf.attention.causal import causal_linear_attention_unnormalized
from protperf.attention.features import (
    causal_key_stabilizer,
    favorpp_parameter,
    global_key_stabilizer,
    positive_features,
    query_stabilizer,
    relu_features,
    scale_for_softmax,
    softmax_feature_logits,
)
from protperf.attention.fused import relu_features_fused, softmax_features

# Floor of the normalizer D_i. With stabilized features D_i is O(1/m) or larger unless every
# feature of query i underflowed against the keys (|q|, |k| in the hundreds); there the
# estimate is meaningless anyway, and the floor keeps outputs AND gradients finite
# (d out / d D = -num / D^2 overflows float32 for D below ~1e-19).
DENOMINATOR_FLOOR = 1e-12


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / max(denominator, 1e-12): padding rows (0 / 0) give 0, never NaN/inf."""
    return numerator / denominator.clamp_min(DENOMINATOR_FLOOR)


def bidirectional_linear_attention(
    q_prime: torch.Tensor, k_prime: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """D^-1 (Q' (K'^T V)), D = diag(Q' (K'^T 1)); never forms an L x L matrix.

    q_prime, k_prime: (B, H, L, m); v: (B, H, L, dv) -> (B, H, L, dv). Time O(L m dv).
    """
    # v with a column of ones: the normalizer D = Q' (K'^T 1) comes out of the same two
    # matmuls as the numerator (no separate key sum and mat-vec, forward or backward)
    v_aug = torch.cat([v, v.new_ones(*v.shape[:-1], 1)], dim=-1)
    kv = k_prime.transpose(-2, -1) @ v_aug  # (B, H, m, dv + 1)
    out = q_prime @ kv  # (B, H, L, dv + 1)
    return _safe_divide(out[..., :-1], out[..., -1:])


def causal_linear_attention(
    q_prime: torch.Tensor,
    k_prime: torch.Tensor,
    v: torch.Tensor,
    chunk_size: int = 64,
    key_log_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """out_i = sum_{j<=i} w_ij v_j / sum_{j<=i} w_ij, w_ij = q'_i.k'_j exp(s_j - s_i), chunked.

    q_prime, k_prime: (B, H, L, m); v: (B, H, L, dv); key_log_scale s: (B, H, L) or None
    (zeros), non-decreasing for stability. Within a chunk of C positions the masked C x C
    weights are formed exactly; across chunks a state S = sum_j exp(s_j - e) k'_j [v_j, 1]^T
    of size m x (dv+1), referenced to the running max e at the previous chunk end, is carried
    and rescaled by exp(e_old - e_new) <= 1 (``causal.py``, with a hand-written reverse-scan
    backward). Time O(L C m + L m dv); memory O(L (m + dv + C)) for activations; the L/C
    per-chunk states (L m (dv+1) / C floats) are saved for backward only when they are small,
    otherwise rebuilt a group of heads at a time. L need not be a multiple of C.
    """
    b, h, length, _ = q_prime.shape
    if key_log_scale is not None:
        key_log_scale = key_log_scale.detach()
    v_aug = torch.cat([v, v.new_ones(b, h, length, 1)], dim=-1)  # last column: normalizer
    out = causal_linear_attention_unnormalized(q_prime, k_prime, v_aug, key_log_scale, chunk_size)
    return _safe_divide(out[..., :-1], out[..., -1:])


def linear_attention_reference(
    q_prime: torch.Tensor,
    k_prime: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    key_log_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """O(L^2) reference: forms A_ij = q'_i.k'_j exp(s_j - s_i) (masked j <= i if causal)."""
    weights = q_prime @ k_prime.transpose(-2, -1)  # (B, H, L, L)
    length = weights.shape[-1]
    if key_log_scale is not None:
        log_rescale = key_log_scale.unsqueeze(-2) - key_log_scale.unsqueeze(-1)
        if causal:
            future = ~torch.ones(length, length, dtype=torch.bool, device=weights.device).tril()
            log_rescale = log_rescale.masked_fill(future, float("-inf"))
        weights = weights * torch.exp(log_rescale)
    if causal:
        weights = weights.tril()
    return (weights @ v) / weights.sum(-1, keepdim=True)


def performer_feature_maps(
    q: torch.Tensor,
    k: torch.Tensor,
    projection: torch.Tensor | None,
    kernel: str,
    key_mask: torch.Tensor | None = None,
    causal_keys: bool = False,
    relu_eps: float = 1e-3,
    favorpp: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Feature maps of queries and keys in float32.

    q, k: (B, H, L, d) raw head projections; projection: (m, d) (None: ReLU no-projection);
    kernel: ``softmax`` or ``relu``; key_mask: (B, L) bool, True = real token (padding keys
    get zero features). Returns (q', k', s): (B, H, L, m) each, and for softmax with
    ``causal_keys`` the per-position key log-scale s (B, H, L) (otherwise None: softmax keys
    share one stabilizer per (batch, head), so q'_i.k'_j ratios are exact).
    """
    work_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    q, k = q.to(work_dtype), k.to(work_dtype)
    key_log_scale = None
    q, k = scale_for_softmax(q), scale_for_softmax(k)
    if kernel == "softmax":
        proj = projection.to(work_dtype)
        if not favorpp and not proj.requires_grad:
            # FAVOR+ with the usual fixed projection: hand-written backward, fewest passes over
            # (B, H, L, m). Queries drop |q|^2/2 (one per-row constant, it cancels like the
            # stabilizer); padding keys already get zero features.
            q_prime, _ = softmax_features(q, proj, "row", subtract_half_sq=False)
            k_prime, key_log_scale = softmax_features(
                k, proj, "causal" if causal_keys else "global", key_mask=key_mask)
            return q_prime, k_prime, key_log_scale
        # FAVOR++ or a trainable projection: autograd of the reference formulas
        a = favorpp_parameter(q, k, key_mask) if favorpp else None
        q_logits = softmax_feature_logits(q, proj, a)
        k_logits = softmax_feature_logits(k, proj, a)
        q_prime = positive_features(q_logits, query_stabilizer(q_logits))
        if causal_keys:
            key_log_scale = causal_key_stabilizer(k_logits, key_mask)
            k_prime = positive_features(k_logits, key_log_scale.unsqueeze(-1))
        else:
            k_prime = positive_features(k_logits, global_key_stabilizer(k_logits, key_mask))
    elif kernel == "relu":
        proj = None if projection is None else projection.to(work_dtype)
        if proj is not None and not proj.requires_grad:  # hand-written backward, masks keys
            q_prime = relu_features_fused(q, proj, relu_eps)
            return q_prime, relu_features_fused(k, proj, relu_eps, key_mask), None
        q_prime = relu_features(q, proj, relu_eps)
        k_prime = relu_features(k, proj, relu_eps)
    else:
        raise ValueError(f"kernel must be 'softmax' or 'relu', got {kernel!r}")
    if key_mask is not None:
        k_prime = k_prime * key_mask[:, None, :, None].to(k_prime.dtype)
    return q_prime, k_prime, key_log_scale


def favor_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    projection: torch.Tensor | None,
    kernel: str,
    causal: bool,
    key_mask: torch.Tensor | None = None,
    chunk_size: int = 64,
    relu_eps: float = 1e-3,
    favorpp: bool = False,
) -> torch.Tensor:
    """Performer attention of raw heads q, k: (B, H, L, d), v: (B, H, L, dv) -> v's dtype.

    Runs in float32 with autocast disabled (feature exponents and normalizers overflow in
    half precision), whatever the input dtype; float64 inputs stay float64.
    """
    out_dtype = v.dtype
    work_dtype = torch.float64 if v.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=v.device.type, enabled=False):
        q_prime, k_prime, key_log_scale = performer_feature_maps(
            q.to(work_dtype), k.to(work_dtype), projection, kernel, key_mask,
            causal_keys=causal, relu_eps=relu_eps, favorpp=favorpp,
        )
        v = v.to(work_dtype)
        if causal:
            out = causal_linear_attention(q_prime, k_prime, v, chunk_size, key_log_scale)
        else:
            out = bidirectional_linear_attention(q_prime, k_prime, v)
    return out.to(out_dtype)
