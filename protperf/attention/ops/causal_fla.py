"""Causal FAVOR+ through flash-linear-attention's ``chunk_simple_gla`` (Triton, CUDA).

With the causal-safe stabilizer s (non-decreasing), causal FAVOR+ is a gated linear
attention with one scalar log-gate per position:

    out_i = sum_{j<=i} (q'_i.k'_j) exp(s_j - s_i) [v_j, 1]
          = sum_{j<=i} (q'_i.k'_j) exp(G_i - G_j) [v_j, 1],   G_t = sum_{u<=t} g_u,

with g_t = s_{t-1} - s_t <= 0 (g_0 = 0; ReLU features: g = None), which is fla's
``chunk_simple_gla(q, k, v, g, scale=1)`` (its ``naive_chunk_simple_gla`` takes the cumsum of
g inside each chunk and multiplies pairs by exp(G_i - G_j), states by exp(G_last)). fla's
layout is (B, T, H, K); the value carries the normalizer as an extra column of ones. Values
and features are zero-padded to a multiple of 16 columns (zeros change no dot product): fla
0.6.0 asserts even K and V for 16-bit inputs in ``chunk_bwd_dv`` (a Triton miscompile of odd
tails), and aligned rows suit its block loads. Segments go through ``cu_seqlens`` on the
flattened (1, B L) batch: each protein a sequence of its own. fla 0.6.0 refuses the gated
backward on Hopper GPUs with Triton >= 3.4, < 3.7.1 (wrong results there, its issue #640):
upgrade Triton or install tilelang.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch
import torch.nn.functional as F

from protperf.attention.ops.segments import cu_seqlens_from_segments

try:  # the optional ``gpu`` extra (pip install protperf[gpu]); needs CUDA and Triton
    from fla.ops.simple_gla import chunk_simple_gla as _fla_chunk_simple_gla
except Exception:  # ImportError, or Triton failing to initialize without a GPU
    _fla_chunk_simple_gla = None

VALUE_ALIGN = 16


def _gated_backward_supported() -> bool:
    """False where fla 0.6.0 refuses its gated backward (Hopper, Triton 3.4 <= v < 3.7.1,
    no tilelang); True elsewhere, and when fla is absent (nothing to refuse)."""
    if _fla_chunk_simple_gla is None:
        return True
    try:
        from fla.utils import IS_NVIDIA_HOPPER, TRITON_ABOVE_3_4_0, TRITON_ABOVE_3_7_1
    except ImportError:  # other fla versions: trust the kernel
        return True
    broken = IS_NVIDIA_HOPPER and TRITON_ABOVE_3_4_0 and not TRITON_ABOVE_3_7_1
    return not broken or importlib.util.find_spec("tilelang") is not None


GATED_BACKWARD_SUPPORTED = _gated_backward_supported()
GatedKernel = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


def fla_available() -> bool:
    """True when fla's chunk_simple_gla imported (package installed, Triton usable)."""
    return _fla_chunk_simple_gla is not None


def fla_chunk_simple_gla() -> GatedKernel | None:
    """fla's chunk_simple_gla itself (benchmarks time it alone), or None without fla."""
    return _fla_chunk_simple_gla


def gates_from_log_scale(log_scale: torch.Tensor) -> torch.Tensor:
    """Per-position log-gates g_t = s_{t-1} - s_t <= 0 (g_0 = 0): (B, H, L) -> same.

    float32 (float64 stays float64): the gates are exponent arguments.
    """
    s = log_scale.detach()
    s = s if s.dtype == torch.float64 else s.float()
    return F.pad(s[..., :-1] - s[..., 1:], (1, 0))


def gated_causal_attention_unnormalized(
    q_prime: torch.Tensor,
    k_prime: torch.Tensor,
    v_aug: torch.Tensor,
    log_scale: torch.Tensor | None,
    segment_ids: torch.Tensor | None = None,
    kernel: GatedKernel | None = None,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """sum_{j<=i, same segment} q'_i.k'_j exp(s_j - s_i) v_aug_j via a simple-GLA kernel.

    q_prime, k_prime: (B, H, L, m); v_aug: (B, H, L, e); log_scale: (B, H, L) or None;
    segment_ids: (B, L) or None. kernel: a function with fla's ``chunk_simple_gla``
    signature (q, k, v, g, scale, cu_seqlens) on (B, T, H, .) tensors; default fla's own.
    Returns (B, H, L, e) in float32 (float64 for float64 input).
    """
    kernel = kernel or _fla_chunk_simple_gla
    if kernel is None:
        raise RuntimeError("flash-linear-attention is not installed: pip install 'protperf[gpu]'")
    b, h, length, _ = q_prime.shape
    e = v_aug.shape[-1]
    low = compute_dtype or q_prime.dtype
    pad_k, pad_v = -q_prime.shape[-1] % VALUE_ALIGN, -e % VALUE_ALIGN
    q, k = (F.pad(x.to(low), (0, pad_k)).transpose(1, 2) for x in (q_prime, k_prime))
    v = F.pad(v_aug.to(low), (0, pad_v)).transpose(1, 2)  # (B, L, H, e + pad_v)
    g = None if log_scale is None else gates_from_log_scale(log_scale).transpose(1, 2)
    cu_seqlens = None
    if segment_ids is not None:  # one sequence per segment, rows flattened into one
        cu_seqlens = cu_seqlens_from_segments(segment_ids)
        if g is not None:  # a restarted stabilizer may drop at a start: its gate is unused
            starts = F.pad(segment_ids[:, 1:] != segment_ids[:, :-1], (1, 0))
            g = g.masked_fill(starts[:, :, None], 0.0)
        q, k, v = (x.reshape(1, b * length, h, x.shape[-1]) for x in (q, k, v))
        g = None if g is None else g.reshape(1, b * length, h)
    out, _ = kernel(q.contiguous(), k.contiguous(), v.contiguous(),
                    g=None if g is None else g.contiguous(), scale=1.0, cu_seqlens=cu_seqlens)
    out = out.reshape(b, length, h, -1)[..., :e]
    wide = torch.float64 if q_prime.dtype == torch.float64 else torch.float32
    return out.transpose(1, 2).to(wide)
