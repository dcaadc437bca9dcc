"""Hand-written forward/backward of the Performer feature maps (``feature_maps.py`` formulas).

Two forms:

- ``softmax_features`` / ``relu_features_fused``: features of whole sequences as autograd
  functions (the kernels that keep (B, H, L, m) features: segments, GPUs, bf16);
- ``block_features`` / ``block_feature_grad``: plain functions on one block of positions for
  the kernels that recompute features in backward (``favor_linear.py``, ``favor_chunked.py``),
  which keep q, k, v and never the features.

Autograd of the reference formula ``exp(x W^T - |x|^2/2 - c)`` walks the (B, H, L, m) feature
tensor about twice as often as needed. Here the exponent is formed in place, padding keys get
an infinite shift (feature 0, no separate masking pass), and the backward is two passes plus
one matmul:

    dP = dF * F,    dx = dP W - rowsum(dP) x       (|x|^2/2 subtracted; queries: dx = dP W)

ReLU features relu(x W^T) + eps: dx = (dF * [F > eps]) W. The stabilizer c is a constant
(detached; it cancels in the attention ratio).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.autograd.function import once_differentiable

#: row maxima (B, H, L, 1) of the exponents -> (shift broadcastable to them, key log-scale
#: (B, H, L) or None); built by ``feature_maps.stabilizer_shift``
Shift = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


class _SoftmaxFeatures(torch.autograd.Function):
    """F = exp(x W^T - h(x) - c - log sqrt(m)), h(x) = |x|^2/2 or 0; see module docstring."""

    @staticmethod
    def forward(ctx, x, projection, shift_of, subtract_half_sq, key_mask):
        num_features = projection.shape[0]
        features = x @ projection.transpose(0, 1)  # (B, H, L, m), the exponent, then F
        row_max = features.amax(dim=-1, keepdim=True)
        half_sq = 0.5 * (x * x).sum(-1, keepdim=True) if subtract_half_sq else None
        if half_sq is not None:
            row_max = row_max - half_sq
        shift, log_scale = shift_of(row_max)
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
        grad_x = _exponent_grad(grad_features * features, projection,
                                x if ctx.subtract_half_sq else None)
        return grad_x, None, None, None, None


def softmax_features(
    x: torch.Tensor,
    projection: torch.Tensor,
    shift_of: Shift,
    subtract_half_sq: bool = True,
    key_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Positive FAVOR+ features of scaled queries or keys, with a hand-written backward.

    x: (B, H, L, d), already scaled by d^-1/4; projection W: (m, d), fixed (no gradient:
    use the reference formulas of ``feature_maps.py`` if W must be trained); shift_of: the
    stabilizer from the row maxima (``feature_maps.stabilizer_shift``); subtract_half_sq:
    False for queries (|q|^2/2 is one constant per row, it cancels too); key_mask: (B, L),
    padding rows get zero features. Returns (F (B, H, L, m), the causal key log-scale s
    (B, H, L) or None), s detached.
    """
    if projection.requires_grad:
        raise ValueError("softmax_features takes a fixed random projection (requires_grad=False)")
    return _SoftmaxFeatures.apply(x, projection, shift_of, subtract_half_sq, key_mask)


class _ReluFeatures(torch.autograd.Function):
    """F = relu(x W^T) + eps (padding rows 0), in place; backward reads F, not a mask.

    F > eps exactly where x W^T > 0 (up to x W^T below eps times the float epsilon, where
    x W^T + eps rounds to eps: those get gradient 0, as relu gives at 0), so one fused
    ``threshold_backward`` pass gives dF * [F > eps].
    """

    @staticmethod
    def forward(ctx, x, projection, eps, key_mask):
        features = _relu_(x @ projection.transpose(0, 1), eps, key_mask)
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

    Same values and gradients as ``feature_maps.relu_features`` followed by zeroing the rows
    of padding keys (key_mask: (B, L) bool, True = real token).
    """
    if projection.requires_grad:
        raise ValueError("relu_features_fused takes a fixed random projection "
                         "(requires_grad=False)")
    return _ReluFeatures.apply(x, projection, eps, key_mask)


def _relu_(logits: torch.Tensor, eps: float, key_mask: torch.Tensor | None) -> torch.Tensor:
    """relu(logits) + eps in place, padding rows (key_mask (B, n) False) zeroed."""
    logits.clamp_min_(0.0).add_(eps)
    if key_mask is not None:
        logits.mul_(key_mask[:, None, :, None].to(logits.dtype))
    return logits


def _exponent_grad(grad_exponent: torch.Tensor, projection: torch.Tensor,
                   x: torch.Tensor | None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient of the exponent x W^T (- |x|^2/2 when x is given) at x: dP W (- rowsum(dP) x),
    in ``out`` (contiguous, x's shape) when given."""
    grad_x = _project(grad_exponent.contiguous(), projection.transpose(0, 1), out)
    if x is None:
        return grad_x
    return grad_x.addcmul_(grad_exponent.sum(-1, keepdim=True), x, value=-1.0)


# ----------------------------------------------------------- one block, recomputed in backward
class Workspace:
    """Buffers reused by the blocks of one forward or backward call, so that a block's
    temporaries are not allocated and freed again every block (with ~1 MiB blocks glibc then
    grows and trims its heap each block: page faults, system time).

    ``get(name, *shape)`` is a contiguous tensor of ``shape`` over the buffer ``name``,
    grown when a shape needs more: the first, full block sets the size and the last, shorter
    block takes a view of it. Its contents are not kept from one ``get`` to the next; a
    tensor got must not outlive the call (nothing saved for backward, nothing returned).
    """

    def __init__(self, like: torch.Tensor) -> None:
        self._like = like
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, *shape: int) -> torch.Tensor:
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < size:
            buffer = self._buffers[name] = self._like.new_empty(size)
        return buffer[:size].view(shape)


def scaled_block(x: torch.Tensor, rows: slice, scale: float,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """x[:, :, rows] * scale as a contiguous (B, H, n, d) tensor (one pass, whatever x's
    strides; in ``out`` when given): its projection is then one (B H n, d) x (d, m) matrix
    product."""
    if out is None:
        out = x.new_empty(x.shape[0], x.shape[1], rows.stop - rows.start, x.shape[-1])
    return torch.mul(x[:, :, rows], scale, out=out)


def _project(x: torch.Tensor, projection: torch.Tensor,
             out: torch.Tensor | None = None) -> torch.Tensor:
    """x (..., n, d) contiguous -> x W^T (..., n, m) as one 2-D matrix product (in ``out``,
    contiguous, when given)."""
    shape = (*x.shape[:-1], projection.shape[0])
    if out is None:
        return (x.reshape(-1, x.shape[-1]) @ projection.transpose(0, 1)).view(shape)
    torch.mm(x.reshape(-1, x.shape[-1]), projection.transpose(0, 1),
             out=out.view(-1, shape[-1]))
    return out


def key_logits(x: torch.Tensor, projection: torch.Tensor, kernel: str,
               out: torch.Tensor | None = None):
    """Scaled keys of one block x (B, H, n, d) -> (exponents x W^T (B, H, n, m), in ``out``
    when given; per-key max of the softmax exponent minus |x|^2/2 (B, H, n), |x|^2/2
    (B, H, n, 1)); ReLU: (x W^T, None, None)."""
    logits = _project(x, projection, out)
    if kernel != "softmax":
        return logits, None, None
    half_sq = 0.5 * (x * x).sum(-1, keepdim=True)
    return logits, logits.amax(dim=-1) - half_sq.squeeze(-1), half_sq


def block_features(
    x: torch.Tensor,
    projection: torch.Tensor,
    kernel: str,
    eps: float = 1e-3,
    key_shift: torch.Tensor | None = None,
    key_mask: torch.Tensor | None = None,
    logits: tuple | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Features of one block of scaled queries or keys x (B, H, n, d) -> (B, H, n, m).

    kernel ``softmax``: queries (key_shift None) exp(x W^T - rowmax) / sqrt(m); keys
    exp(x W^T - |x|^2/2 - key_shift) / sqrt(m) with key_shift (B, H, 1 or n, 1) the
    stabilizer; ``relu``: relu(x W^T) + eps. key_mask (B, n): padding keys get 0. logits: a
    ``key_logits`` result of this x to reuse (consumed in place); else the features are
    formed in ``out`` (contiguous (B, H, n, m)) when given.
    """
    exponent, _, half_sq = logits if logits is not None else (
        key_logits(x, projection, kernel, out) if key_shift is not None
        else (_project(x, projection, out), None, None))
    if kernel != "softmax":
        return _relu_(exponent, eps, key_mask)
    log_norm = 0.5 * math.log(projection.shape[0])
    if key_shift is None:
        total = exponent.amax(dim=-1, keepdim=True) + log_norm
    else:
        total = half_sq + key_shift + log_norm
        if key_mask is not None:
            total = total.masked_fill(~key_mask[:, None, :, None], float("inf"))
    return _exp_shifted_(exponent, total)


#: log2(e): exp(z) = exp2(z log2 e)
LOG2E = 1.0 / math.log(2.0)


def _exp_shifted_(exponent: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """exp(exponent - shift) in place (shift broadcastable, +inf gives 0) as
    exp2(exponent log2 e - shift log2 e): one multiply-add pass, then exp2, which torch's CPU
    kernels evaluate faster than exp; the result differs from exp by a few float roundings."""
    return torch.add(shift * -LOG2E, exponent, alpha=LOG2E, out=exponent).exp2_()


def block_feature_grad(
    grad_features: torch.Tensor,
    features: torch.Tensor,
    x: torch.Tensor,
    projection: torch.Tensor,
    kernel: str,
    eps: float,
    is_key: bool,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gradient at the scaled block x (B, H, n, d) from dF (B, H, n, m), F = block_features
    (both consumed), in ``out`` (contiguous, x's shape) when given. Softmax keys route
    |x|^2/2; queries' row max and every shift are constants."""
    if kernel != "softmax":
        grad_exponent = torch.ops.aten.threshold_backward.grad_input(
            grad_features, features, eps, grad_input=grad_features)  # dF * [F > eps]
    else:
        grad_exponent = features.mul_(grad_features)
    return _exponent_grad(grad_exponent, projection,
                          x if kernel == "softmax" and is_key else None, out)
