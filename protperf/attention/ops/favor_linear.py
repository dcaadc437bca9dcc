"""Bidirectional FAVOR+ (softmax or ReLU) from raw heads, features recomputed in backward.

    out = D^-1 Q' (K'^T [V, 1]),   D = Q' (K'^T 1)

One autograd function from q, k, v to the normalized output. The forward walks L in blocks:
key features of a block are formed, added into the (m, dv + 1) state S = K'^T [V, 1] and
dropped; then every query block reads S. Softmax keys share one stabilizer c per (batch,
head), the max over real keys of the exponents: the state is kept at the running max of the
blocks seen so far and rescaled by exp(c_old - c_new) <= 1 when it rises, so the result is
that of the global max (``feature_maps.global_key_stabilizer``) up to rounding.

Saved for backward: q, k, v, the normalizer D (L per head), S and c; never an (L, m)
feature tensor, nor the output. The backward makes two block passes: queries (recomputed
q', dq' = g S^T, dS += q'^T g) and keys (recomputed k', dk' = [v, 1] dS^T, dv = k' dS), with
g the gradient of [numerator, denominator]:

    g = [G / D, -(G . out) / D]      (D clamped at ``DENOMINATOR_FLOOR``, as ``normalize``),

where G . out = (G / D) . (q' S_v) = rowsum(q' * ((G / D) S_v^T)) comes from the product
dq' needs anyway (S_v: the value columns of S), so the output is not kept. Each pass reads a
block's heads once, so with ``grads_in_place`` (heads only the caller's layer owns) its
gradients are written over them: dq over q in the query pass, dk, dv over k, v in the key pass.

Time O(L m (d + dv)); memory O(L (d + dv) + block m) per head. Under no_grad (embedding,
scoring) only one block of features exists at a time. A block's temporaries (scaled x,
features, products, gradients) live in a ``Workspace`` allocated once per forward or backward
call and reused by every block: allocated afresh, these ~1 MiB pieces made glibc grow and trim
its heap every block.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from protperf.attention.ops.feature_autograd import (
    Workspace,
    block_feature_grad,
    block_features,
    key_logits,
    scaled_block,
)
from protperf.attention.ops.linear import DENOMINATOR_FLOOR

#: bytes of one block's (B, H, n, m) features: the block length n follows from it
BLOCK_BYTES = 2**20
#: fewest positions per block (Python steps over short sequences cost more than their memory)
MIN_ROWS = 128


def block_length(shape: tuple[int, ...], num_features: int, itemsize: int,
                 multiple: int = 1) -> int:
    """Positions per block for heads of ``shape`` (B, H, L, d): features within
    ``BLOCK_BYTES`` but at least ``MIN_ROWS`` positions, a multiple of ``multiple``."""
    b, h = shape[0], shape[1]
    rows = max(MIN_ROWS, BLOCK_BYTES // max(1, b * h * num_features * itemsize))
    return max(multiple, rows // multiple * multiple)


def _blocks(length: int, size: int):
    return [slice(start, min(start + size, length)) for start in range(0, length, size)]


def _merged_heads(like: torch.Tensor, b: int, h: int, length: int, dv: int) -> torch.Tensor:
    """An empty (B, H, L, dv) output laid out as (B, L, H, dv) in memory: merging the heads
    for the output projection (``transpose(1, 2).reshape(B, L, H dv)``) is then a view,
    not a copy."""
    return like.new_empty(b, length, h, dv).transpose(1, 2)


def _with_ones(v: torch.Tensor) -> torch.Tensor:
    """[v, 1] (B, H, n, dv + 1) of v (B, H, n, dv), a new tensor."""
    return _with_ones_into(v.new_empty(*v.shape[:-1], v.shape[-1] + 1), v)


def _with_ones_into(out: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """[v, 1] (B, H, n, dv + 1) of v (B, H, n, dv), written to ``out``."""
    out[..., :-1] = v
    out[..., -1] = 1.0
    return out


def overwritable(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                 grads_in_place: bool) -> tuple[bool, bool, bool]:
    """Which of q, k, v a recomputing kernel may overwrite with its own gradient in backward.

    With ``grads_in_place`` (the caller's promise that nothing reads q, k, v after this
    call's backward, as for a layer's own projections), each one that requires grad and is not
    a leaf: a leaf's ``.grad`` would share its values. None of them when two share memory
    (a block's gradient would land on another's heads). Each block's gradient is written once
    its heads are read for the last time, so the backward holds no second set of (B, H, L, d)
    tensors. A tensor overwritten this way has its version counter bumped: another node that
    saved it and runs its backward after this one stops with torch's "modified by an inplace
    operation" error instead of reading gradients as values.
    """
    if not (grads_in_place and torch.is_grad_enabled()):
        return False, False, False
    if len({x.untyped_storage().data_ptr() for x in (q, k, v)}) < 3:
        return False, False, False
    return tuple(x.requires_grad and not x.is_leaf for x in (q, k, v))


def gradient_buffers(heads: tuple[torch.Tensor, ...],
                     in_place: tuple[bool, ...]) -> tuple[torch.Tensor, ...]:
    """The tensors backward writes the gradients of ``heads`` into: each head itself where
    ``in_place`` (see ``overwritable``), else a new tensor of its layout."""
    return tuple(x if own else torch.empty_like(x)
                 for x, own in zip(heads, in_place, strict=True))


def _batched(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, *x.shape[-2:])


def _product(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """a @ b for (B, H, r, k) x (B, H, k, c) batches, written to ``out`` (contiguous)."""
    torch.bmm(_batched(a), _batched(b), out=out.view(-1, *out.shape[-2:]))
    return out


def _add_product(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """out += a @ b in place for batches of matrices (out contiguous; no temporary product)."""
    out.view(-1, *out.shape[-2:]).baddbmm_(_batched(a), _batched(b))


def _numerator_grad(grad_out: torch.Tensor, den: torch.Tensor,
                    out: torch.Tensor | None = None):
    """grad_out G (B, H, n, dv), normalizer D (B, H, n, 1) -> (G / D, in ``out`` when given;
    the factor that turns -(G / D) . numerator into the denominator's gradient: 1 / D, 0
    where D is under ``DENOMINATOR_FLOOR``), D clamped at the floor as ``normalize`` does."""
    clamped = den.clamp_min(DENOMINATOR_FLOOR)
    return (torch.div(grad_out, clamped, out=out),
            (den >= DENOMINATOR_FLOOR).to(den.dtype).div_(clamped))


def _denominator_grad(features: torch.Tensor, grad_read: torch.Tensor,
                      inverse: torch.Tensor) -> torch.Tensor:
    """-(G . out) / D from the read of the value state: features q' (B, H, n, m) and
    grad_read = (G / D) S_v^T (B, H, n, m), so (G / D) . numerator = rowsum(q' * grad_read);
    inverse from ``_numerator_grad`` -> (B, H, n, 1). The output need not be kept."""
    return torch.linalg.vecdot(features, grad_read).unsqueeze_(-1).mul_(inverse).neg_()


class _FavorLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, projection, kernel, eps, key_mask, block, in_place):
        b, h, length, d = q.shape
        m, dv = projection.shape[0], v.shape[-1]
        scale = d**-0.25
        work = Workspace(q)  # one block's x, features and [v, 1] / products, reused
        state = q.new_zeros(b, h, m, dv + 1)
        shift = None  # softmax: the running key stabilizer (B, H, 1, 1)
        for sl in _blocks(length, block):
            n = sl.stop - sl.start
            mask = None if key_mask is None else key_mask[:, sl]
            x = scaled_block(k, sl, scale, work.get("x", b, h, n, d))
            logits = key_logits(x, projection, kernel, work.get("features", b, h, n, m))
            if kernel == "softmax":
                per_key = logits[1] if mask is None else logits[1].masked_fill(
                    ~mask[:, None, :], float("-inf"))
                seen = per_key.amax(dim=-1)[..., None, None]
                new = seen if shift is None else torch.maximum(shift, seen)
                new = torch.where(torch.isfinite(new), new, torch.zeros_like(new))
                if shift is not None:
                    state.mul_(torch.exp(shift - new))
                shift = new
            features = block_features(x, projection, kernel, eps, shift, mask, logits)
            values = _with_ones_into(work.get("values", b, h, n, dv + 1), v[:, :, sl])
            _add_product(state, features.transpose(-2, -1), values)
        out = _merged_heads(v, b, h, length, dv)
        den = v.new_empty(b, h, length, 1)
        for sl in _blocks(length, block):
            n = sl.stop - sl.start
            x = scaled_block(q, sl, scale, work.get("x", b, h, n, d))
            features = block_features(x, projection, kernel, eps,
                                      out=work.get("features", b, h, n, m))
            both = _product(features, state, work.get("values", b, h, n, dv + 1))
            den[:, :, sl] = both[..., -1:]
            torch.div(both[..., :-1], both[..., -1:].clamp_min(DENOMINATOR_FLOOR),
                      out=out[:, :, sl])
        ctx.save_for_backward(q, k, v, projection, key_mask, state, shift, den)
        ctx.setup = (kernel, eps, block, in_place)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        q, k, v, projection, key_mask, state, shift, den = ctx.saved_tensors
        kernel, eps, block, in_place = ctx.setup
        b, h, length, d = q.shape
        m, dv = projection.shape[0], v.shape[-1]
        scale = d**-0.25
        work = Workspace(q)  # one block's x, features, their gradients, [G / D, grad_den]
        grad_q, grad_k, grad_v = gradient_buffers((q, k, v), in_place)
        grad_state = torch.zeros_like(state)
        values_t, ones_t = state[..., :dv].transpose(-2, -1), state[..., -1].unsqueeze(-2)
        for sl in _blocks(length, block):
            n = sl.stop - sl.start
            x = scaled_block(q, sl, scale, work.get("x", b, h, n, d))
            features = block_features(x, projection, kernel, eps,
                                      out=work.get("features", b, h, n, m))
            grad_both = work.get("grad_both", b, h, n, dv + 1)  # [G / D, grad_den]
            grad_num, inverse = _numerator_grad(grad_out[:, :, sl], den[:, :, sl],
                                                grad_both[..., :dv])
            # [grad_num, grad_den] S^T as a product of inner dim dv (not dv + 1) + rank one
            grad_features = _product(grad_num, values_t, work.get("grad_features", b, h, n, m))
            grad_both[..., dv:] = _denominator_grad(features, grad_features, inverse)
            _add_product(grad_state, features.transpose(-2, -1), grad_both)
            grad_features.addcmul_(grad_both[..., dv:], ones_t)
            grad_x = block_feature_grad(grad_features, features, x, projection, kernel, eps,
                                        is_key=False, out=work.get("grad_x", b, h, n, d))
            torch.mul(grad_x, scale, out=grad_q[:, :, sl])
        grad_values_t = grad_state[..., :dv].transpose(-2, -1)  # (B, H, dv, m)
        grad_ones = grad_state[..., -1].unsqueeze(-2)  # (B, H, 1, m)
        for sl in _blocks(length, block):
            n = sl.stop - sl.start
            mask = None if key_mask is None else key_mask[:, sl]
            x = scaled_block(k, sl, scale, work.get("x", b, h, n, d))
            features = block_features(x, projection, kernel, eps, shift, mask,
                                      out=work.get("features", b, h, n, m))
            grad_features = _product(v[:, :, sl], grad_values_t,
                                     work.get("grad_features", b, h, n, m)).add_(grad_ones)
            torch.matmul(features, grad_state[..., :dv], out=grad_v[:, :, sl])  # v read
            grad_x = block_feature_grad(grad_features, features, x, projection, kernel, eps,
                                        is_key=True, out=work.get("grad_x", b, h, n, d))
            torch.mul(grad_x, scale, out=grad_k[:, :, sl])
        return grad_q, grad_k, grad_v, None, None, None, None, None, None


def favor_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    projection: torch.Tensor,
    kernel: str,
    eps: float = 1e-3,
    key_mask: torch.Tensor | None = None,
    block: int | None = None,
    grads_in_place: bool = False,
) -> torch.Tensor:
    """Normalized bidirectional FAVOR+ of raw heads: q, k (B, H, L, d), v (B, H, L, dv) ->
    (B, H, L, dv), all float32 or all float64.

    projection: (m, d) fixed random features; kernel ``softmax`` or ``relu`` (relu(x W^T) +
    eps); key_mask (B, L) bool, True = real token; block: positions per block (default:
    ``block_length``); grads_in_place: write the gradients of q, k, v over them in backward
    (only for heads nothing reads afterwards; see ``overwritable``). Queries and keys are
    scaled by d^-1/4 inside. Equals ``normalize(bidirectional_unnormalized(...))`` of the
    ``feature_maps`` features.
    """
    if projection.requires_grad:
        raise ValueError("favor_linear_attention takes a fixed random projection")
    block = block or block_length(q.shape, projection.shape[0], q.element_size())
    return _FavorLinear.apply(q, k, v, projection.to(q.dtype), kernel, eps, key_mask, block,
                              overwritable(q, k, v, grads_in_place))
