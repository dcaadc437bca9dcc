"""Loop-free chunked causal linear attention (the torch kernel for GPUs and bf16).

Shapes: ``q_prime, k_prime: (B, H, L, m)``, ``v_aug: (B, H, L, e)`` (values with the
normalizer column), ``log_scale s: (B, H, L)`` the non-decreasing causal key stabilizer or
None (ReLU: no exponentials), ``segment_ids: (B, L)`` or None. Output ``(B, H, L, e)``.

All heads and chunks are batched: the intra-chunk C x C weights in one matmul, the chunk
summaries U_n = sum_{j in n} exp(s_j - e_n) k'_j v_j^T in one matmul, and the states
P_n = sum_{j <= n} f(j, n) U_j (f(j, n) = exp(e_j - e_n), e_n the stabilizer at the end of
chunk n) in a cumulative sum (no stabilizer) or a Hillis-Steele doubling scan of ceil(log2 N)
batched steps whose factors exp(e_{n-2^k} - e_n) <= 1 come straight from e: relative
exponents only, so the scan is exact in float32 at any length. Segments zero f(j, n) (and
the in-chunk pairs) across protein boundaries, which restarts the state at each start.

Precision (``compute_dtype``, e.g. bfloat16 under autocast): the three matmuls take their
inputs in compute_dtype; the exponent factors, the scan states, the accumulated output and
(in the caller) the normalizer division stay float32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def _chunks(x: torch.Tensor, num_chunks: int, chunk_size: int, replicate: bool = False):
    """(B, H, L, ...) -> (B, H, N, C, ...), end-padded with zeros (or the last value)."""
    pad = num_chunks * chunk_size - x.shape[2]
    if pad:
        if replicate:
            x = torch.cat([x, x[:, :, -1:].expand(*x.shape[:2], pad, *x.shape[3:])], dim=2)
        else:
            x = F.pad(x, (0, 0) * (x.dim() - 3) + (0, pad))
    return x.reshape(*x.shape[:2], num_chunks, chunk_size, *x.shape[3:])


def _doubling_factors(log_end: torch.Tensor | None, segment_end: torch.Tensor | None, step: int):
    """f(n - step, n) for n >= step: (B or 1, H or 1, N - step, 1, 1), or None if all ones."""
    factor = None
    if log_end is not None:
        factor = torch.exp(log_end[:, :, :-step] - log_end[:, :, step:])
    if segment_end is not None:
        same = segment_end[:, None, :-step] == segment_end[:, None, step:]
        same = same.to(torch.float32 if log_end is None else log_end.dtype)
        factor = same if factor is None else factor * same
    return None if factor is None else factor[..., None, None]


def _scan_(x: torch.Tensor, log_end, segment_end, reverse: bool) -> torch.Tensor:
    """In place on x (B, H, N, m, e): y_n = sum_{j<=n} f(j, n) x_j (reverse: sum over j>=n)."""
    num = x.shape[2]
    step = 1
    while step < num:
        factor = _doubling_factors(log_end, segment_end, step)
        if reverse:
            carried = x[:, :, step:] if factor is None else x[:, :, step:] * factor
            x[:, :, :-step] += carried
        else:
            carried = x[:, :, :-step] if factor is None else x[:, :, :-step] * factor
            x[:, :, step:] += carried
        step *= 2
    return x


class _DecayedScan(torch.autograd.Function):
    """P_n = sum_{j<=n} f(j, n) U_j along axis 2; backward: the same scan reversed."""

    @staticmethod
    def forward(ctx, summaries, log_end, segment_end):
        ctx.save_for_backward(log_end, segment_end)
        return _scan_(summaries.clone(), log_end, segment_end, reverse=False)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        log_end, segment_end = ctx.saved_tensors
        return _scan_(grad.clone(), log_end, segment_end, reverse=True), None, None


def decayed_prefix_sum(
    summaries: torch.Tensor, log_end: torch.Tensor | None, segment_end: torch.Tensor | None
) -> torch.Tensor:
    """P_n = sum_{j<=n} exp(e_j - e_n) [same segment] U_j; summaries (B, H, N, m, e).

    log_end e: (B, H, N) non-decreasing (detached) or None; segment_end: (B, N) or None.
    O(log N) batched steps; a plain cumsum when there is neither.
    """
    if log_end is None and segment_end is None:
        return summaries.cumsum(dim=2)
    log_end = None if log_end is None else log_end.detach().to(summaries.dtype)
    return _DecayedScan.apply(summaries, log_end, segment_end)


def causal_scan_attention_unnormalized(
    q_prime: torch.Tensor,
    k_prime: torch.Tensor,
    v_aug: torch.Tensor,
    log_scale: torch.Tensor | None,
    chunk_size: int,
    segment_ids: torch.Tensor | None = None,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """sum_{j<=i, same segment} q'_i.k'_j exp(s_j - s_i) v_aug_j -> (B, H, L, e) float32.

    Time O(L C m + L m e + (L / C) m e log(L / C)); memory O(L (m + e + C) + (L / C) m e).
    Gradients flow to q', k', v_aug (not to the detached stabilizer s). compute_dtype: the
    matmul input dtype (default: q_prime's); float64 inputs stay float64 throughout.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
    b, h, length, _ = q_prime.shape
    wide = torch.float64 if q_prime.dtype == torch.float64 else torch.float32
    low = compute_dtype or q_prime.dtype
    num_chunks = -(-length // chunk_size)
    qc = _chunks(q_prime.to(low), num_chunks, chunk_size)  # (B, H, N, C, m)
    kc = _chunks(k_prime.to(low), num_chunks, chunk_size)
    vc = _chunks(v_aug.to(low), num_chunks, chunk_size)  # (B, H, N, C, e)
    lower = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=q_prime.device).tril()

    sc = log_end = None
    if log_scale is not None:
        sc = _chunks(log_scale.detach().to(wide).unsqueeze(-1), num_chunks, chunk_size,
                     replicate=True).squeeze(-1)  # (B, H, N, C)
        log_end = sc[..., -1]
    seg = seg_end = None
    if segment_ids is not None:
        seg = _chunks(segment_ids[:, None, :, None], num_chunks, chunk_size,
                      replicate=True)[:, 0, ..., 0]  # (B, N, C)
        seg_end = seg[..., -1]

    # inside chunks: A_ij = q'_i.k'_j exp(s_j - s_i), j <= i, same segment
    allowed = lower if seg is None else lower & (seg.unsqueeze(-1) == seg.unsqueeze(-2))[:, None]
    weights = (qc @ kc.transpose(-2, -1)).to(wide)
    if sc is None:
        weights = weights.masked_fill(~allowed, 0.0)
    else:
        tiny = math.log(torch.finfo(wide).tiny)
        pair = (sc.unsqueeze(-2) - sc.unsqueeze(-1)).clamp(tiny, 0.0).exp()
        weights = weights * pair.masked_fill(~allowed, 0.0)
    out = (weights.to(low) @ vc).to(wide)
    if num_chunks == 1:
        return out.reshape(b, h, chunk_size, -1)[:, :, :length]

    # chunk summaries at the chunk end, the scanned states, and their reads
    value_scale = None
    if sc is not None:
        value_scale = torch.exp(sc - log_end.unsqueeze(-1))
    if seg is not None:
        keep = (seg == seg_end.unsqueeze(-1)).to(wide)[:, None]
        value_scale = keep if value_scale is None else value_scale * keep
    v_summed = vc if value_scale is None else (vc.to(wide) * value_scale.unsqueeze(-1)).to(low)
    summaries = (kc[:, :, :-1].transpose(-2, -1) @ v_summed[:, :, :-1]).to(wide)
    states = decayed_prefix_sum(summaries, _drop_last(log_end), _drop_last(seg_end, dim=1))
    cross = (qc[:, :, 1:] @ states.to(low)).to(wide)  # (B, H, N - 1, C, e)
    read_scale = None
    if sc is not None:
        read_scale = torch.exp(log_end[:, :, :-1, None] - sc[:, :, 1:])
    if seg is not None:
        same = (seg[:, 1:] == seg_end[:, :-1, None]).to(wide)[:, None]
        read_scale = same if read_scale is None else read_scale * same
    if read_scale is not None:
        cross = cross * read_scale.unsqueeze(-1)
    out = out + F.pad(cross, (0, 0, 0, 0, 1, 0))
    return out.reshape(b, h, num_chunks * chunk_size, -1)[:, :, :length]


def _drop_last(x: torch.Tensor | None, dim: int = 2) -> torch.Tensor | None:
    """x without its last entry along dim (the last chunk's state is never read)."""
    return None if x is None else x.narrow(dim, 0, x.shape[dim] - 1)
