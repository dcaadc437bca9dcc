"""Chunked causal linear attention with a hand-written reverse-scan backward.

Shapes: ``q_prime, k_prime: (B, H, L, m)`` non-negative features, ``v_aug: (B, H, L, e)``
values with the normalizer column of ones appended (e = dv + 1), ``key_log_scale s:
(B, H, L)`` the non-decreasing causal key stabilizer (see ``favor.causal_linear_attention``).

The sequence is cut into N chunks of C positions. Inside a chunk the masked C x C weights
A_ij = q'_i.k'_j exp(s_j - s_i) (j <= i) are formed exactly. Across chunks a state carries
the earlier chunks: with e_n the stabilizer at the end of chunk n and the chunk summary
U_n = sum_{j in n} exp(s_j - e_n) k'_j v_j^T (m x e),

    S_0 = 0,  S_n = exp(e_{n-2} - e_{n-1}) S_{n-1} + U_{n-1}   (state of chunks < n at e_{n-1})
    out_i = sum_{j <= i in chunk n} A_ij v_j + exp(e_{n-1} - s_i) q'_i S_n

Every exponent is <= 0 (s non-decreasing), and nothing after position i enters out_i.
Autograd of that loop keeps one graph node per chunk and per op; here the forward writes the
states into one preallocated (B, H, N, m, e) tensor (kept for backward: L m e / C floats,
about L m for C = 64) and the backward runs the transposed recurrence from the last chunk:

    dU_{N-1} = 0,  dU_n = exp(e_n - e_{n+1}) dU_{n+1} + dS_{n+1},   dS_n = q'_n^T (r_n * G_n)

with r_i = exp(e_{n-1} - s_i) and G the output gradient. The stabilizer s is a constant
(detached), exactly as in the autograd formulation.
"""

from __future__ import annotations

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


def _accumulate_matmul(target: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """target += a @ b in the matmul itself (beta = 1); (..., C, k) @ (..., k, n), 5-D."""
    flat = target.view(-1, *target.shape[-2:])
    flat.baddbmm_(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]))


class _CausalLinearAttention(torch.autograd.Function):
    """Unnormalized causal linear attention sum_{j<=i} w_ij v_aug_j; see module docstring."""

    @staticmethod
    def forward(ctx, q_prime, k_prime, v_aug, key_log_scale, chunk_size):
        b, h, length, _ = q_prime.shape
        num_chunks = -(-length // chunk_size)
        qc = _chunked(q_prime, num_chunks, chunk_size)
        kc = _chunked(k_prime, num_chunks, chunk_size)
        vc = _chunked(v_aug, num_chunks, chunk_size)
        pad = num_chunks * chunk_size - length
        s = F.pad(key_log_scale, (0, pad), mode="replicate") if pad else key_log_scale
        sc = s.reshape(b, h, num_chunks, chunk_size)

        # Inside chunks: rescale factors exp(s_j - s_i) for j <= i, 0 above the diagonal.
        future = torch.ones(chunk_size, chunk_size, dtype=torch.bool,
                            device=q_prime.device).triu(1)
        rescale = (sc.unsqueeze(-2) - sc.unsqueeze(-1)).masked_fill_(future, float("-inf"))
        rescale.exp_()
        weights = (qc @ kc.transpose(-2, -1)).mul_(rescale)  # (B, H, N, C, C)
        out = weights @ vc

        chunk_end = sc[..., -1]  # (B, H, N)
        states = None
        read_scale = None
        if num_chunks > 1:
            value_scale = torch.exp(sc - chunk_end.unsqueeze(-1)).unsqueeze(-1)
            summaries = kc.transpose(-2, -1) @ (vc * value_scale)  # (B, H, N, m, e)
            decay = torch.exp(chunk_end[..., :-1] - chunk_end[..., 1:])[..., None, None]
            states = torch.empty_like(summaries)
            states[:, :, 0].zero_()
            states[:, :, 1].copy_(summaries[:, :, 0])
            for n in range(2, num_chunks):
                torch.addcmul(summaries[:, :, n - 1], states[:, :, n - 1], decay[:, :, n - 2],
                              out=states[:, :, n])
            previous_end = torch.cat([sc[..., :1, :1], chunk_end[..., :-1, None]], dim=-2)
            read_scale = torch.exp(previous_end - sc).unsqueeze(-1)  # (B, H, N, C, 1)
            out.addcmul_(read_scale, qc @ states)
        ctx.save_for_backward(qc, kc, vc, sc, rescale, weights, states, read_scale)
        ctx.length = length
        return _unchunked(out, length)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        qc, kc, vc, sc, rescale, weights, states, read_scale = ctx.saved_tensors
        num_chunks, chunk_size = qc.shape[2], qc.shape[3]
        grad = _chunked(grad_out.contiguous(), num_chunks, chunk_size)  # (B, H, N, C, e)

        # Inside chunks.
        grad_weights = (grad @ vc.transpose(-2, -1)).mul_(rescale)
        grad_q = grad_weights @ kc
        grad_k = grad_weights.transpose(-2, -1) @ qc
        grad_v = weights.transpose(-2, -1) @ grad

        if num_chunks > 1:
            chunk_end = sc[..., -1]
            grad_read = grad * read_scale  # (B, H, N, C, e)
            _accumulate_matmul(grad_q, grad_read, states.transpose(-2, -1))
            grad_states = qc.transpose(-2, -1) @ grad_read  # (B, H, N, m, e)
            # Reverse scan: grad_summaries[n] = decay_n * grad_summaries[n+1] + grad_states[n+1].
            decay = torch.exp(chunk_end[..., :-1] - chunk_end[..., 1:])[..., None, None]
            grad_summaries = torch.empty_like(grad_states)
            grad_summaries[:, :, -1].zero_()
            grad_summaries[:, :, -2].copy_(grad_states[:, :, -1])
            for n in range(num_chunks - 3, -1, -1):
                torch.addcmul(grad_states[:, :, n + 1], grad_summaries[:, :, n + 1],
                              decay[:, :, n], out=grad_summaries[:, :, n])
            value_scale = torch.exp(sc - chunk_end.unsqueeze(-1)).unsqueeze(-1)
            _accumulate_matmul(grad_k, vc * value_scale, grad_summaries.transpose(-2, -1))
            grad_v.add_((kc @ grad_summaries).mul_(value_scale))
        length = ctx.length
        return (_unchunked(grad_q, length), _unchunked(grad_k, length),
                _unchunked(grad_v, length), None, None)


def causal_linear_attention_unnormalized(
    q_prime: torch.Tensor,
    k_prime: torch.Tensor,
    v_aug: torch.Tensor,
    key_log_scale: torch.Tensor,
    chunk_size: int,
) -> torch.Tensor:
    """sum_{j<=i} q'_i.k'_j exp(s_j - s_i) v_aug_j, chunked; (B, H, L, e) -> (B, H, L, e).

    Time O(L C m + L m e); memory O(L (m + e + C)) plus the L/C chunk states (L m e / C).
    Gradients flow to q', k' and v_aug (not to the detached stabilizer s).
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
    return _CausalLinearAttention.apply(q_prime, k_prime, v_aug, key_log_scale, chunk_size)
