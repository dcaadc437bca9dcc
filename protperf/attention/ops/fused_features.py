"""Hand-written forward/backward for FAVOR+ softmax features (the hot path of every layer).

Autograd of the reference formula ``exp(x W^T - |x|^2/2 - c)`` (``ops/features.py``) walks the
(B, H, L, m) feature tensor about twice as often as needed: a fresh tensor for each of the
subtraction and the exponential, a negation and a row sum to route the gradient of |x|^2/2.
Here the exponent is formed in place, padding keys get an infinite shift (feature 0, no
separate masking pass), and the backward is two passes plus one matmul:

    dP = dF * F,    dx = dP W - rowsum(dP) x = (dP [W | 1])[:, :d] - (dP [W | 1])[:, d] x

The stabilizer c is a constant of the formula (it cancels in the attention ratio, so it is
detached, as in the reference): per query row, one per (batch, head) for bidirectional keys,
or the causal running max per position (``features.causal_key_stabilizer``).
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from protperf.attention.ops.features import causal_key_stabilizer, global_key_stabilizer

STABILIZERS = ("row", "global", "causal")


def _stabilizer_shift(
    row_max: torch.Tensor,
    stabilizer: str,
    key_mask: torch.Tensor | None,
    segment_ids: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Shift c from the per-row maximum exponent (B, H, L, 1).

    Returns (shift broadcastable to (B, H, L, 1), key log-scale (B, H, L) for ``causal``).
    """
    if stabilizer == "row":
        return row_max, None
    # the stabilizers of features.py, on the per-row maxima (a feature axis of size 1)
    if stabilizer == "global":
        # (B, H, 1, 1), or (B, H, L, 1) per segment
        return global_key_stabilizer(row_max, key_mask, segment_ids), None
    if stabilizer == "causal":
        log_scale = causal_key_stabilizer(row_max, key_mask, segment_ids)  # (B, H, L)
        return log_scale.unsqueeze(-1), log_scale
    raise ValueError(f"stabilizer must be one of {STABILIZERS}, got {stabilizer!r}")


class _SoftmaxFeatures(torch.autograd.Function):
    """F = exp(x W^T - h(x) - c - log sqrt(m)), h(x) = |x|^2/2 or 0; see module docstring."""

    @staticmethod
    def forward(ctx, x, projection, stabilizer, subtract_half_sq, key_mask, segment_ids):
        num_features = projection.shape[0]
        features = x @ projection.transpose(0, 1)  # (B, H, L, m), the exponent, then F
        row_max = features.amax(dim=-1, keepdim=True)
        half_sq = 0.5 * (x * x).sum(-1, keepdim=True) if subtract_half_sq else None
        if half_sq is not None:
            row_max = row_max - half_sq
        shift, log_scale = _stabilizer_shift(row_max, stabilizer, key_mask, segment_ids)
        total = shift + 0.5 * math.log(num_features)
        if half_sq is not None:
            total = total + half_sq
        if key_mask is not None:  # padding keys: exp(-inf) = 0
            total = total.masked_fill(~key_mask[:, None, :, None], float("inf"))
        features.sub_(total).exp_()
        ctx.subtract_half_sq = subtract_half_sq
        ctx.save_for_backward(x, projection, features)
        if log_scale is not None:
            ctx.mark_non_differentiable(log_scale)
        return features, log_scale

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_features, grad_log_scale):
        x, projection, features = ctx.saved_tensors
        grad_exponent = grad_features * features
        if not ctx.subtract_half_sq:
            return grad_exponent @ projection, None, None, None, None, None
        ones = projection.new_ones(projection.shape[0], 1)
        both = grad_exponent @ torch.cat([projection, ones], dim=1)  # (B, H, L, d + 1)
        grad_x = both[..., :-1] - both[..., -1:] * x
        return grad_x, None, None, None, None, None


def softmax_features(
    x: torch.Tensor,
    projection: torch.Tensor,
    stabilizer: str,
    subtract_half_sq: bool = True,
    key_mask: torch.Tensor | None = None,
    segment_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Positive FAVOR+ features of scaled queries or keys, with a hand-written backward.

    x: (B, H, L, d), already scaled by d^-1/4; projection W: (m, d), a buffer (no gradient:
    use the reference functions in ``ops/features.py`` if W must be trained); stabilizer:
    ``row`` (queries: per-row max, then |x|^2/2 may be left out since it cancels too),
    ``global`` (bidirectional keys: one max per (batch, head) over real keys), ``causal``
    (causal keys: running max over positions <= j); key_mask: (B, L) bool, True = real
    token, padding rows get zero features; segment_ids: (B, L) or None, key stabilizers then
    restart at every segment (``ops/segments.py``). Returns (F (B, H, L, m), s) where s (B, H, L) is
    the causal key log-scale (``causal`` only, else None), detached.
    """
    if stabilizer not in STABILIZERS:
        raise ValueError(f"stabilizer must be one of {STABILIZERS}, got {stabilizer!r}")
    if projection.requires_grad:
        raise ValueError("softmax_features takes a fixed random projection (requires_grad=False)")
    return _SoftmaxFeatures.apply(x, projection, stabilizer, subtract_half_sq, key_mask,
                                  segment_ids)


class _ReluFeatures(torch.autograd.Function):
    """F = relu(x W^T) + eps (padding rows 0), in place; backward reads F, not a mask.

    F > eps exactly where x W^T > 0 (up to x W^T below eps times the float epsilon, where
    x W^T + eps rounds to eps: those get gradient 0, as relu gives at 0), so one fused
    ``threshold_backward`` pass gives dF * [F > eps], against three for a boolean mask
    (compare, bool-to-float copy, multiply). The price: F (4 bytes per entry, not 1) stays
    alive until this backward runs, after the attention's own backward has let go of it.
    """

    @staticmethod
    def forward(ctx, x, projection, eps, key_mask):
        features = x @ projection.transpose(0, 1)
        features.clamp_min_(0.0).add_(eps)
        if key_mask is not None:  # padding keys: zero features, zero gradient
            features.mul_(key_mask[:, None, :, None].to(features.dtype))
        ctx.eps = eps
        ctx.save_for_backward(projection, features)
        return features

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_features):
        projection, features = ctx.saved_tensors
        grad_logits = torch.ops.aten.threshold_backward(grad_features, features, ctx.eps)
        return grad_logits @ projection, None, None, None


def relu_features_fused(
    x: torch.Tensor,
    projection: torch.Tensor,
    eps: float,
    key_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """relu(x W^T) + eps with a hand-written backward; x: (B, H, L, d), W: (m, d) fixed.

    Same values and gradients as ``features.relu_features`` followed by zeroing the rows of
    padding keys (key_mask: (B, L) bool, True = real token); keeps F itself for backward.
    """
    if projection.requires_grad:
        raise ValueError("relu_features_fused takes a fixed random projection "
                         "(requires_grad=False)")
    return _ReluFeatures.apply(x, projection, eps, key_mask)
