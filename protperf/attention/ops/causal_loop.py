"""Chunked causal linear attention with a hand-written reverse-scan backward (CPU kernel).

The fastest causal kernel on CPU in float32 (in-place scans, states saved or rebuilt by head
groups); it loops over (batch x head) and chunks, so GPUs get ``causal_scan.py`` instead.

Shapes: ``q_prime, k_prime: (B, H, L, m)`` non-negative features, ``v_aug: (B, H, L, e)``
values with the normalizer column of ones appended (e = dv + 1), ``key_log_scale s:
(B, H, L)`` the non-decreasing causal key stabilizer (see ``features.causal_key_stabilizer``).

The sequence is cut into N chunks of C positions. Inside a chunk the masked C x C weights
A_ij = q'_i.k'_j exp(s_j - s_i) (j <= i) are formed exactly. Across chunks a state carries
the earlier chunks: with e_n the stabilizer at the end of chunk n and the chunk summary
U_n = sum_{j in n} exp(s_j - e_n) k'_j v_j^T (m x e),

    S_0 = 0,  S_n = exp(e_{n-2} - e_{n-1}) S_{n-1} + U_{n-1}   (state of chunks < n at e_{n-1})
    out_i = sum_{j <= i in chunk n} A_ij v_j + exp(e_{n-1} - s_i) q'_i S_n

Every exponent is <= 0 (s non-decreasing), and nothing after position i enters out_i.
Autograd of that loop keeps one graph node per chunk and per op; here the states (L m e / C
floats per head) are scanned in place in one (heads, N, m, e) tensor, kept for backward when
all heads fit in ``STATE_GROUP_BYTES``, otherwise built a group of heads at a time and rebuilt
in backward, which runs the transposed recurrence in place from the last chunk:

    dU_{N-1} = 0,  dU_n = exp(e_n - e_{n+1}) dU_{n+1} + dS_{n+1},   dS_n = q'_n^T (r_n * G_n)

with r_i = exp(e_{n-1} - s_i) and G the output gradient. The stabilizer s is a constant
(detached), exactly as in the autograd formulation; s = None (features without a
stabilizer, e.g. ReLU) drops every exponential factor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def _chunked(x: torch.Tensor, num_chunks: int, chunk_size: int) -> torch.Tensor:
    """(B, H, L, k) -> (B, H, N, C, k), zero-padded at the end."""
    pad = num_chunks * chunk_size - x.shape[2]
    if pad:
        x = F.pad(x, (0, 0, 0, pad))
    return x.reshape(x.shape[0], x.shape[1], num_chunks, chunk_size, x.shape[-1])


def _unchunked(x: torch.Tensor, length: int) -> torch.Tensor:
    """(B, H, N, C, k) -> (B, H, L, k), dropping the end padding."""
    b, h, n, c, k = x.shape
    return x.reshape(b, h, n * c, k)[:, :, :length]


# The cross-chunk states take N m e floats per (batch, head). When all heads' states fit in
# this many bytes they are built at once and saved for backward; otherwise they are built for
# a group of heads at a time and rebuilt in backward instead of being saved.
STATE_GROUP_BYTES = 32 * 2**20


def _intra_rescale(sc: torch.Tensor | None, chunk_size: int, like: torch.Tensor) -> torch.Tensor:
    """Factors exp(s_j - s_i) for j <= i, 0 above: (G, N, C, C), or (C, C) without stabilizer.

    The exponent is clamped to [log(tiny), 0] before exp: the allowed pairs are <= 0 anyway,
    the future ones are zeroed by the lower-triangular mask afterwards (no -inf or underflow
    reaches exp, whose slow path for those is several times slower on CPU).
    """
    lower = torch.ones(chunk_size, chunk_size, dtype=like.dtype, device=like.device).tril()
    if sc is None:
        return lower
    rescale = (sc.unsqueeze(-2) - sc.unsqueeze(-1)).clamp_(math.log(torch.finfo(sc.dtype).tiny), 0)
    return rescale.exp_().mul_(lower)


def _chunk_scales(sc: torch.Tensor):
    """Per-chunk factors of the cross-chunk recurrence, from the log-scales sc: (G, N, C).

    Returns value_scale exp(s_j - e_n) (G, N, C, 1), decay exp(e_{n-1} - e_n) (G, N-1, 1, 1)
    and read_scale exp(e_{n-1} - s_i) (G, N-1, C, 1) for chunks 1..N-1 (e_n: chunk end).
    """
    chunk_end = sc[..., -1]
    value_scale = torch.exp(sc - chunk_end.unsqueeze(-1)).unsqueeze(-1)
    decay = torch.exp(chunk_end[:, :-1] - chunk_end[:, 1:])[..., None, None]
    read_scale = torch.exp(chunk_end[:, :-1, None] - sc[:, 1:]).unsqueeze(-1)
    return value_scale, decay, read_scale


def _inclusive_states(kc, vc_scaled, decay):
    """P_n = sum_{j<=n} exp(e_j - e_n) U_j, U_j = k'_j^T (scaled v_j); (G, N, m, e), in place.

    kc: (G, N, C, m), vc_scaled: (G, N, C, e), decay: (G, N-1, 1, 1) = exp(e_n - e_{n+1}),
    or None without stabilizer (a plain cumulative sum). The state read by chunk n is P_{n-1}.
    """
    states = kc.transpose(-2, -1) @ vc_scaled
    _decayed_scan_(states, decay)
    return states


def _decayed_scan_(x: torch.Tensor, decay: torch.Tensor | None, reverse: bool = False) -> None:
    """In place along axis 1 of x (G, K, ...): a running sum with decay factors.

    Forward: x_n += decay[:, n-1] x_{n-1} for n = 1 .. K-1; reverse: x_n += decay[:, n] x_{n+1}
    for n = K-2 .. 0; decay None: plain sums. One small op per step on views made once (faster
    than cumsum over the chunk axis, and the decayed form has no cumsum).
    """
    rows = x.unbind(1)
    decays = None if decay is None else decay.unbind(1)
    for n in range(len(rows) - 2, -1, -1) if reverse else range(1, len(rows)):
        previous, factor = (n + 1, n) if reverse else (n - 1, n - 1)
        if decays is None:
            rows[n].add_(rows[previous])
        else:
            rows[n].addcmul_(rows[previous], decays[factor])


def _head_groups(num_heads: int, num_chunks: int, m: int, e: int, itemsize: int):
    """Slices of the flattened (batch x head) axis whose states fit STATE_GROUP_BYTES."""
    size = max(1, STATE_GROUP_BYTES // max(1, num_chunks * m * e * itemsize))
    return [slice(start, min(start + size, num_heads)) for start in range(0, num_heads, size)]


def _scaled(x: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """x * scale, or x itself without a stabilizer (scale None)."""
    return x if scale is None else x * scale


def _add_scaled_(out: torch.Tensor, scale: torch.Tensor | None, x: torch.Tensor) -> None:
    """out += scale * x in place, or out += x without a stabilizer (scale None)."""
    if scale is None:
        out.add_(x)
    else:
        out.addcmul_(scale, x)


def _pick(x: torch.Tensor | None, index):
    """x[index], or None for a missing (stabilizer-free) factor."""
    return None if x is None else x[index]


class _CausalLinearAttention(torch.autograd.Function):
    """Unnormalized causal linear attention sum_{j<=i} w_ij v_aug_j; see module docstring.

    Products over chunk slices run one (batch x head) at a time: a slice such as chunks
    1..N-1 of several heads is not one strided batch, and a batched matmul would copy it.
    """

    @staticmethod
    def forward(ctx, q_prime, k_prime, v_aug, key_log_scale, chunk_size):
        b, h, length, m = q_prime.shape
        e = v_aug.shape[-1]
        num_chunks = -(-length // chunk_size)
        # (B, H, ...) flattened to one axis G = B H: (G, N, C, k)
        qc = _chunked(q_prime, num_chunks, chunk_size).reshape(b * h, num_chunks, chunk_size, m)
        kc = _chunked(k_prime, num_chunks, chunk_size).reshape(b * h, num_chunks, chunk_size, m)
        vc = _chunked(v_aug, num_chunks, chunk_size).reshape(b * h, num_chunks, chunk_size, e)
        sc = None
        if key_log_scale is not None:
            pad = num_chunks * chunk_size - length
            s = F.pad(key_log_scale, (0, pad), mode="replicate") if pad else key_log_scale
            sc = s.reshape(b * h, num_chunks, chunk_size)

        rescale = _intra_rescale(sc, chunk_size, qc)  # kept for backward
        weights = (qc @ kc.transpose(-2, -1)).mul_(rescale)  # (G, N, C, C)
        out = weights @ vc

        saved_states = None
        if num_chunks > 1:
            value_scale, decay, read_scale = (None,) * 3 if sc is None else _chunk_scales(sc)
            groups = _head_groups(b * h, num_chunks, m, e, q_prime.element_size())
            for g in groups:
                states = _inclusive_states(kc[g], _scaled(vc[g], _pick(value_scale, g)),
                                           _pick(decay, g))
                for head in range(g.start, g.stop):
                    cross = qc[head, 1:] @ states[head - g.start, :-1]  # (N-1, C, e)
                    _add_scaled_(out[head, 1:], _pick(read_scale, head), cross)
            # states of all heads under the group budget: keep them for backward (no rebuild)
            saved_states = states if len(groups) == 1 else None
        ctx.save_for_backward(qc, kc, vc, sc, rescale, weights, saved_states)
        ctx.shape = (b, h, length)
        return _unchunked(out.view(b, h, num_chunks, chunk_size, e), length)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        qc, kc, vc, sc, rescale, weights, saved_states = ctx.saved_tensors
        b, h, length = ctx.shape
        num_chunks, chunk_size, m = qc.shape[1:]
        e = vc.shape[-1]
        grad = _chunked(grad_out.contiguous(), num_chunks, chunk_size).reshape(vc.shape)

        # Inside chunks.
        grad_weights = (grad @ vc.transpose(-2, -1)).mul_(rescale)
        grad_q = grad_weights @ kc
        grad_k = grad_weights.transpose(-2, -1) @ qc
        grad_v = weights.transpose(-2, -1) @ grad
        del grad_weights

        if num_chunks > 1:
            value_scale, decay, read_scale = (None,) * 3 if sc is None else _chunk_scales(sc)
            for g in _head_groups(b * h, num_chunks, m, e, qc.element_size()):
                v_scaled = _scaled(vc[g], _pick(value_scale, g))
                if saved_states is None:  # rebuilt; its buffer then takes the reverse scan
                    states = _inclusive_states(kc[g], v_scaled, _pick(decay, g))
                    scan = states
                else:
                    states, scan = saved_states, torch.empty_like(saved_states)
                for head in range(g.start, g.stop):
                    local = head - g.start
                    grad_read = _scaled(grad[head, 1:], _pick(read_scale, head))  # (N-1, C, e)
                    grad_q[head, 1:].baddbmm_(grad_read, states[local, :-1].transpose(-2, -1))
                    # T_n = dS_{n+1} + exp(e_n - e_{n+1}) T_{n+1}: the gradient of chunk n's
                    # summary (n = 0 .. N-2; the last chunk has none), scanned in place
                    torch.bmm(qc[head, 1:].transpose(-2, -1), grad_read, out=scan[local, :-1])
                grad_summaries = scan[:, :-1]
                _decayed_scan_(grad_summaries, _pick(decay, g), reverse=True)
                for head in range(g.start, g.stop):
                    local = head - g.start
                    summary_grad = grad_summaries[local]  # (N-1, m, e)
                    grad_k[head, :-1].baddbmm_(v_scaled[local, :-1],
                                               summary_grad.transpose(-2, -1))
                    _add_scaled_(grad_v[head, :-1], _pick(value_scale, (head, slice(0, -1))),
                                 kc[head, :-1] @ summary_grad)

        def unflatten(x: torch.Tensor) -> torch.Tensor:
            return _unchunked(x.view(b, h, num_chunks, chunk_size, x.shape[-1]), length)

        return unflatten(grad_q), unflatten(grad_k), unflatten(grad_v), None, None


def causal_linear_attention_unnormalized(
    q_prime: torch.Tensor,
    k_prime: torch.Tensor,
    v_aug: torch.Tensor,
    key_log_scale: torch.Tensor | None,
    chunk_size: int,
) -> torch.Tensor:
    """sum_{j<=i} q'_i.k'_j exp(s_j - s_i) v_aug_j, chunked; (B, H, L, e) -> (B, H, L, e).

    key_log_scale s: (B, H, L), non-decreasing, or None for unstabilized features (s = 0,
    e.g. ReLU features): then no exponentials are taken and the scans are plain sums.

    Time O(L C m + L m e); memory O(L (m + e + C)) plus the L/C chunk states (L m e / C).
    Gradients flow to q', k' and v_aug (not to the detached stabilizer s).
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
    return _CausalLinearAttention.apply(q_prime, k_prime, v_aug, key_log_scale, chunk_size)
