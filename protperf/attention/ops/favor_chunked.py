"""Causal FAVOR+ (softmax or ReLU) from raw heads, features recomputed in backward (CPU).

    out_i = sum_{j<=i} q'_i.k'_j exp(s_j - s_i) [v_j, 1]   (then numerator / denominator)

with s the causal key stabilizer (``feature_maps.causal_key_stabilizer``; ReLU: s = 0). The
sequence is cut into chunks of C positions, exact inside a chunk (masked C x C weights), and
into blocks of N chunks walked by a Python loop that carries one (m, dv + 1) state across
blocks. Inside a block every product is batched over its chunks: with e_n the stabilizer
at the end of chunk n (e_{-1} the end of the previous block), the chunk summaries
U_n = sum_{j in n} exp(s_j - e_n) k'_j [v_j, 1]^T and the carried state P,

    S_0 = P,   S_{n+1} = exp(e_{n-1} - e_n) S_n + U_n     (n = 0 .. N - 1)

is a scan of N in-place multiply-adds on (m, dv + 1) states (every factor <= 1: s never
decreases); S_N is the next block's P, and chunk n reads out_i += exp(e_{n-1} - s_i) q'_i S_n.

Saved for backward: q, k, v, s (B, H, L), the normalizer, and the state entering each block
((B, H, L / (N C), m, dv + 1)); never an (L, m) feature tensor, nor the output (the
denominator's gradient is read off the numerator's, see ``_block_backward``). The backward
walks the blocks from the last, recomputing features and the forward states, and carries
the transposed state R = sum_{i after} exp(e - s_i) q'_i g_i^T back through the same kind
of scan, from the block's end (g: the gradient of [numerator, denominator], as in
``favor_linear.py``). A block's q, k, v are read only by its own step, so with
``grads_in_place`` their gradients are written over them as each block finishes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from protperf.attention.ops.favor_linear import (
    _add_product,
    _blocks,
    _merged_heads,
    _numerator_grad,
    _with_ones,
    gradient_buffers,
    overwritable,
)
from protperf.attention.ops.feature_autograd import (
    block_feature_grad,
    block_features,
    key_logits,
    scaled_block,
)
from protperf.attention.ops.feature_maps import causal_key_stabilizer
from protperf.attention.ops.linear import DENOMINATOR_FLOOR


def _chunked(x: torch.Tensor, chunk: int) -> torch.Tensor:
    """(B, H, n, k) -> (B, H, N, C, k), zero-padded at the end."""
    pad = -x.shape[2] % chunk
    if pad:
        x = F.pad(x, (0, 0, 0, pad))
    return x.reshape(x.shape[0], x.shape[1], -1, chunk, x.shape[-1])


#: fewest positions per block: Python steps over short sequences cost more than their memory
MIN_BLOCK = 512


class _Factors:
    """The exp factors of one block from its log-scales (None for ReLU: all ones).

    s: (B, H, n) padded to N C by its last value; start: e_{-1} (B, H). Attributes:
    pair (B, H, N, C, C) exp(s_j - s_i) for j <= i else 0; value (B, H, N, C, 1)
    exp(s_j - e_n); read (B, H, N, C, 1) exp(e_{n-1} - s_i); step (B, H, N)
    exp(e_{n-1} - e_n), the decay of the state across chunk n.
    """

    def __init__(self, s: torch.Tensor | None, start: torch.Tensor | None, chunk: int,
                 num_chunks: int, like: torch.Tensor) -> None:
        lower = torch.ones(chunk, chunk, dtype=like.dtype, device=like.device).tril()
        if s is None:
            self.pair = lower
            self.value = self.read = self.step = None
            return
        pad = num_chunks * chunk - s.shape[-1]
        if pad:
            s = torch.cat([s, s[..., -1:].expand(*s.shape[:-1], pad)], dim=-1)
        sc = s.reshape(*s.shape[:-1], num_chunks, chunk)  # (B, H, N, C)
        end = sc[..., -1]  # (B, H, N)
        ref = torch.cat([start.unsqueeze(-1), end], dim=-1)  # (B, H, N + 1)
        tiny = math.log(torch.finfo(s.dtype).tiny)
        self.pair = (sc.unsqueeze(-2) - sc.unsqueeze(-1)).clamp_(tiny, 0.0).exp_().mul_(lower)
        self.value = torch.exp(sc - end.unsqueeze(-1)).unsqueeze(-1)
        self.read = torch.exp(ref[..., :-1, None] - sc).unsqueeze(-1)
        self.step = (ref[..., :-1] - end).clamp_(tiny, 0.0).exp_()


def _scaled(x: torch.Tensor, factor: torch.Tensor | None) -> torch.Tensor:
    return x if factor is None else x * factor


def _scan(summaries: torch.Tensor, carry: torch.Tensor, step: torch.Tensor | None,
          reverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The scan over a block's chunks: (B, H, N, m, e) summaries U, (B, H, m, e) carry,
    step (B, H, N) or None (all ones) -> (the N states the chunks read (B, H, N, m, e), the
    state passed on (B, H, m, e)), one in-place multiply-add per chunk.

    Forward: S_0 = carry, S_{n+1} = step_n S_n + U_n; chunk n reads S_n, S_N is passed on.
    Reverse: R_N = carry, R_n = step_n R_{n+1} + U_n; chunk n reads R_{n+1}, R_0 is passed
    on."""
    b, h, n, m, e = summaries.shape
    out = summaries.new_empty(b, h, n, m, e)

    def update(source: int, previous: torch.Tensor, target: torch.Tensor | None):
        if step is None:
            return torch.add(summaries[:, :, source], previous, out=target)
        return torch.addcmul(summaries[:, :, source], previous, step[:, :, source, None, None],
                             out=target)

    if reverse:
        out[:, :, n - 1] = carry
        for index in range(n - 2, -1, -1):
            update(index + 1, out[:, :, index + 1], out[:, :, index])
        return out, update(0, out[:, :, 0], None)
    out[:, :, 0] = carry
    for index in range(1, n):
        update(index - 1, out[:, :, index - 1], out[:, :, index])
    return out, update(n - 1, out[:, :, n - 1], None)


class _FavorChunked(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, projection, kernel, eps, key_mask, chunk, block, in_place):
        b, h, length, d = q.shape
        m, dv = projection.shape[0], v.shape[-1]
        scale = d**-0.25
        # leading padding takes the first real key's s: found by a pass ahead; without it
        # (no mask, or every row's first key real) s is the running max, block by block
        ahead = (kernel == "softmax" and key_mask is not None
                 and not bool(key_mask[:, 0].all()))
        if ahead:
            per_key = torch.cat([key_logits(scaled_block(k, sl, scale), projection, kernel)[1]
                                 for sl in _blocks(length, block)], dim=-1)
            log_scale = causal_key_stabilizer(per_key.unsqueeze(-1), key_mask)
        else:
            log_scale = q.new_empty(b, h, length) if kernel == "softmax" else None
        slices = _blocks(length, block)
        keep = any(ctx.needs_input_grad[:3])  # no_grad (inference): no states kept
        carries = q.new_empty(b, h, len(slices) if keep else 1, m, dv + 1)
        carry, start = carries[:, :, 0].zero_(), None
        out = _merged_heads(v, b, h, length, dv)
        den = v.new_empty(b, h, length, 1)
        for index, sl in enumerate(slices):
            if keep:
                carries[:, :, index] = carry
            mask = None if key_mask is None else key_mask[:, sl]
            x = scaled_block(k, sl, scale)
            logits = key_logits(x, projection, kernel)
            s = None
            if kernel == "softmax":  # s of the block, and e_{-1}: s before it (or s_0)
                before = None if sl.start == 0 else log_scale[:, :, sl.start - 1]
                if not ahead:  # padding keys skipped; the first key is real
                    per_key = logits[1] if mask is None else logits[1].masked_fill(
                        ~mask[:, None, :], float("-inf"))
                    s = torch.cummax(per_key, dim=-1).values
                    log_scale[:, :, sl] = s if before is None else torch.maximum(
                        s, before.unsqueeze(-1))
                s = log_scale[:, :, sl]
                start = s[..., 0] if before is None else before
            kf = block_features(x, projection, kernel, eps,
                                None if s is None else s.unsqueeze(-1), mask, logits)
            qf = block_features(scaled_block(q, sl, scale), projection, kernel, eps)
            both, carry = _block_forward(qf, kf, _with_ones(v[:, :, sl]), s, start, carry,
                                         chunk)
            den[:, :, sl] = both[..., -1:]
            torch.div(both[..., :-1], both[..., -1:].clamp_min(DENOMINATOR_FLOOR),
                      out=out[:, :, sl])
            del x, logits, kf, qf, both  # not alive beside the next block's
        if keep:
            ctx.save_for_backward(q, k, v, projection, key_mask, log_scale, den, carries)
        ctx.setup = (kernel, eps, chunk, block, in_place)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        q, k, v, projection, key_mask, log_scale, den, carries = ctx.saved_tensors
        kernel, eps, chunk, block, in_place = ctx.setup
        length, d = q.shape[-2:]
        dv = v.shape[-1]
        scale = d**-0.25
        # a block's heads are read (copied to xq, xk, [v, 1]) before its gradients are written
        grad_q, grad_k, grad_v = gradient_buffers((q, k, v), in_place)
        reverse_carry = torch.zeros_like(carries[:, :, 0])
        slices = _blocks(length, block)
        for index in range(len(slices) - 1, -1, -1):
            sl = slices[index]
            n = sl.stop - sl.start
            mask = None if key_mask is None else key_mask[:, sl]
            s = start = None
            if log_scale is not None:
                s = log_scale[:, :, sl]
                start = s[..., 0] if sl.start == 0 else log_scale[:, :, sl.start - 1]
            xk, xq = scaled_block(k, sl, scale), scaled_block(q, sl, scale)
            kf = block_features(xk, projection, kernel, eps,
                                None if s is None else s.unsqueeze(-1), mask)
            qf = block_features(xq, projection, kernel, eps)
            grad_num, inverse = _numerator_grad(grad_out[:, :, sl], den[:, :, sl])

            def query_grad(grad_qf, qf=qf, xq=xq, sl=sl, n=n):  # consumes q' and dq'
                grad_q[:, :, sl] = block_feature_grad(grad_qf[:, :, :n], qf, xq, projection,
                                                      kernel, eps, is_key=False).mul_(scale)

            grad_kf, grad_vb, reverse_carry = _block_backward(
                qf, kf, _with_ones(v[:, :, sl]), grad_num, inverse, s, start,
                carries[:, :, index], reverse_carry, chunk, query_grad)
            del qf, xq, query_grad
            grad_v[:, :, sl] = grad_vb[:, :, :n, :dv]
            grad_k[:, :, sl] = block_feature_grad(grad_kf[:, :, :n], kf, xk, projection,
                                                  kernel, eps, is_key=True).mul_(scale)
            del xk, kf, grad_kf, grad_vb  # not alive beside the next block's
        return grad_q, grad_k, grad_v, None, None, None, None, None, None, None


def _block_forward(qf, kf, v_aug, s, start, carry, chunk):
    """One block: features (B, H, n, m), values [v, 1] (B, H, n, e), log-scales s (B, H, n)
    or None -> (unnormalized output (B, H, n, e), the carry for the next block)."""
    n = qf.shape[2]
    qc, kc, vc = _chunked(qf, chunk), _chunked(kf, chunk), _chunked(v_aug, chunk)
    fac = _Factors(s, start, chunk, qc.shape[2], qc)
    both = ((qc @ kc.transpose(-2, -1)).mul_(fac.pair)) @ vc  # inside chunks
    summaries = kc.transpose(-2, -1) @ _scaled(vc, fac.value)  # (B, H, N, m, e)
    states, carry = _scan(summaries, carry, fac.step)  # (B, H, N, m, e), the next carry
    both.add_(_scaled(qc @ states, fac.read))
    return both.flatten(2, 3)[:, :, :n], carry


def _block_backward(qf, kf, v_aug, grad_num, inverse, s, start, carry, reverse_carry, chunk,
                    query_grad):
    """Gradients of one block at its key features and values (padded to N C rows), and the
    reverse carry R for the previous block. grad_num, inverse: ``_numerator_grad`` of the
    block (G / D (B, H, n, dv), 1 / D (B, H, n, 1)); query_grad(dq') is called with the
    gradient at the query features (B, H, N C, m) as soon as it is complete, and may consume
    q' (it is not read after), so that q' and dq' are gone before the reverse scan.

    The gradient of the denominator, -(G / D) . numerator / D, is read off the products the
    numerator's gradient forms anyway (the output is not kept): (G / D) . numerator_i =
    sum_j W_ij (G / D)_i . v_j + q'_i . (read_i (G / D)_i S_v^T). Its column then enters as
    rank-one terms: [v, 1] has ones in its last column."""
    dv = grad_num.shape[-1]
    qc, kc, vc = _chunked(qf, chunk), _chunked(kf, chunk), _chunked(v_aug, chunk)
    grad_both = torch.cat([grad_num, grad_num.new_zeros(*grad_num.shape[:-1], 1)], dim=-1)
    gc = _chunked(grad_both, chunk)  # the denominator's column filled once known
    fac = _Factors(s, start, chunk, qc.shape[2], qc)
    # inside chunks
    weights = (qc @ kc.transpose(-2, -1)).mul_(fac.pair)
    grad_weights = gc @ vc.transpose(-2, -1)  # (G / D) v^T: the denominator column is 0
    dot = torch.linalg.vecdot(weights, grad_weights)  # (B, H, N, C)
    grad_v = weights.transpose(-2, -1) @ gc  # its last column (of the ones) is dropped
    del weights
    # reads of the forward states S_n (rebuilt from the block's carry)
    v_scaled = _scaled(vc, fac.value)
    states, _ = _scan(kc.transpose(-2, -1) @ v_scaled, carry, fac.step)
    g_read = _scaled(gc, fac.read)
    grad_q = g_read @ states.transpose(-2, -1)
    _add_row_dots(dot, qc, grad_q)
    # the denominator's gradient, and its rank-one terms
    grad_den = _chunked(inverse, chunk).squeeze(-1).mul_(dot).neg_()  # (B, H, N, C)
    gc[..., dv] = grad_den
    if fac.read is not None:
        g_read[..., dv] = grad_den * fac.read.squeeze(-1)
    grad_q.addcmul_(g_read[..., dv:], states[..., dv].unsqueeze(-2))
    del states
    grad_weights.add_(grad_den.unsqueeze(-1)).mul_(fac.pair)
    _add_product(grad_q, grad_weights, kc)
    grad_k = grad_weights.transpose(-2, -1) @ qc
    del grad_weights
    reads = qc.transpose(-2, -1) @ g_read  # T_n = q'_n^T g_read_n (B, H, N, m, e)
    del qc, g_read
    query_grad(grad_q.flatten(2, 3))
    del grad_q
    # R_n = sum over later reads, scanned backwards
    later, reverse_carry = _scan(reads, reverse_carry, fac.step, reverse=True)
    del reads
    _add_product(grad_k, v_scaled, later.transpose(-2, -1))
    grad_v.add_(_scaled(kc @ later, fac.value))
    return grad_k.flatten(2, 3), grad_v.flatten(2, 3), reverse_carry


#: elements per slab of ``_add_row_dots``' temporary product
ROW_DOT_ELEMENTS = 2**18


def _add_row_dots(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """out (B, H, N, C) += rowsum(a * b) for a, b (B, H, N, C, m), a few slabs of chunks at a
    time: no (B, H, N, C, m) temporary, few Python steps."""
    rows = max(1, ROW_DOT_ELEMENTS // (a.shape[-2] * a.shape[-1]))
    for dots, x, y in zip(out.view(-1, out.shape[-1]).split(rows),
                          a.flatten(0, 2).split(rows), b.flatten(0, 2).split(rows), strict=True):
        dots += torch.linalg.vecdot(x, y)


def favor_chunked_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    projection: torch.Tensor,
    kernel: str,
    eps: float = 1e-3,
    key_mask: torch.Tensor | None = None,
    chunk: int = 64,
    block: int | None = None,
    grads_in_place: bool = False,
) -> torch.Tensor:
    """Normalized causal FAVOR+ of raw heads: q, k (B, H, L, d), v (B, H, L, dv) ->
    (B, H, L, dv), all float32 or all float64.

    projection: (m, d) fixed random features; kernel ``softmax`` or ``relu``; key_mask (B, L)
    bool, True = real token; chunk: C; block: positions per Python step (a multiple of C;
    default about sqrt(L (dv + 1) / 6), at least ``MIN_BLOCK``, which balances the L / block
    saved states against the block's temporaries); grads_in_place: write the gradients of q,
    k, v over them in backward (only for heads nothing reads afterwards; see
    ``favor_linear.overwritable``). Equals
    ``normalize(causal_scan_attention_unnormalized(...))`` of the ``feature_maps`` features
    with causal keys, up to rounding.
    """
    if chunk <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk}")
    if projection.requires_grad:
        raise ValueError("favor_chunked_attention takes a fixed random projection")
    if block is None:  # the saved block states (L / n of them) against block temporaries
        block = max(MIN_BLOCK, int(math.sqrt(q.shape[2] * (v.shape[-1] + 1) / 6)))
        block = max(chunk, block // chunk * chunk)
    if block % chunk:
        raise ValueError(f"block={block} is not a multiple of chunk_size={chunk}")
    return _FavorChunked.apply(q, k, v, projection.to(q.dtype), kernel, eps, key_mask, chunk,
                               block, overwritable(q, k, v, grads_in_place))
