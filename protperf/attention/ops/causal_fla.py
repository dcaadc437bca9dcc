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
flattened (1, B L) batch: each protein a sequence of its own, with a host copy of the offsets
(``cu_seqlens_cpu``) so fla sizes its grid without reading the device.

Precision: fla stores its output in its input dtype, so bf16 inputs would round numerator and
normalizer to bf16 before protperf divides one by the other. The features and values go to
fla in float32 instead (its kernels accumulate in float32 and take TF32 matmuls on the
tensor cores), and the division stays float32 whatever the autocast dtype.

fla 0.6.0 refuses the gated backward on Hopper GPUs with 3.4.0 <= Triton < 3.7.1 (wrong
results there, its issue #640) unless its tilelang backend takes over: upgrade Triton or
install tilelang. ``gated_backward_problem`` says so before any step runs.
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


# fla's rule (fla.ops.common.chunk_o.chunk_bwd_dqkwg): gated backward wrong on Hopper for
# these Triton versions, [low, high)
BROKEN_TRITON = ((3, 4, 0), (3, 7, 1))
HAS_TILELANG = importlib.util.find_spec("tilelang") is not None


def triton_version() -> str | None:
    """The installed Triton's version string, or None without Triton."""
    try:
        import triton
    except Exception:  # not installed, or failing to initialize
        return None
    return getattr(triton, "__version__", None)


def _release(version: str) -> tuple[int, ...]:
    """'3.6.0+git1234' -> (3, 6, 0)."""
    numbers = []
    for part in version.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        numbers.append(int(digits) if digits else 0)
    return tuple(numbers)


def gated_backward_problem(device: torch.device | int | None = None) -> str | None:
    """Why fla's gated (softmax) backward cannot run on this GPU, or None where it can.

    fla 0.6.0 raises in its gated backward on Hopper GPUs (compute capability 9.x) with
    3.4.0 <= Triton < 3.7.1 (wrong results there, its issue #640) unless tilelang is
    installed; None without CUDA or without Triton (nothing to refuse).
    """
    if not torch.cuda.is_available():
        return None
    version = triton_version()
    if version is None or torch.cuda.get_device_capability(device)[0] != 9:
        return None
    low, high = BROKEN_TRITON
    if not low <= _release(version) < high or HAS_TILELANG:
        return None
    return (f"fla's gated backward is wrong on Hopper GPUs with Triton {version} (fla issue "
            "#640) and refuses to run: upgrade Triton to >= 3.7.1 or pip install tilelang")


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
) -> torch.Tensor:
    """sum_{j<=i, same segment} q'_i.k'_j exp(s_j - s_i) v_aug_j via a simple-GLA kernel.

    q_prime, k_prime: (B, H, L, m); v_aug: (B, H, L, e); log_scale: (B, H, L) or None;
    segment_ids: (B, L) or None. kernel: a function with fla's ``chunk_simple_gla``
    signature (q, k, v, g, scale, cu_seqlens, cu_seqlens_cpu) on (B, T, H, .) tensors
    returning its output in its input dtype; default fla's own. The kernel gets float32
    inputs (float64 for float64 input), whatever the autocast dtype, and so does the
    normalizer. Returns (B, H, L, e) in float32 (float64 for float64 input).
    """
    kernel = kernel or _fla_chunk_simple_gla
    if kernel is None:
        raise RuntimeError("flash-linear-attention is not installed: pip install 'protperf[gpu]'")
    b, h, length, _ = q_prime.shape
    e = v_aug.shape[-1]
    wide = torch.float64 if q_prime.dtype == torch.float64 else torch.float32
    pad_k, pad_v = -q_prime.shape[-1] % VALUE_ALIGN, -e % VALUE_ALIGN
    q, k = (F.pad(x.to(wide), (0, pad_k)).transpose(1, 2) for x in (q_prime, k_prime))
    v = F.pad(v_aug.to(wide), (0, pad_v)).transpose(1, 2)  # (B, L, H, e + pad_v)
    g = None if log_scale is None else gates_from_log_scale(log_scale).transpose(1, 2)
    cu_seqlens = cu_seqlens_cpu = None
    if segment_ids is not None:  # one sequence per segment, rows flattened into one
        # offsets on the host (one copy of the ids), then the device copy without a sync
        cu_seqlens_cpu = cu_seqlens_from_segments(segment_ids.cpu())
        cu_seqlens = cu_seqlens_cpu.to(q_prime.device, non_blocking=True)
        if g is not None:  # a restarted stabilizer may drop at a start: its gate is unused
            starts = F.pad(segment_ids[:, 1:] != segment_ids[:, :-1], (1, 0))
            g = g.masked_fill(starts[:, :, None], 0.0)
        q, k, v = (x.reshape(1, b * length, h, x.shape[-1]) for x in (q, k, v))
        g = None if g is None else g.reshape(1, b * length, h)
    out, _ = kernel(q.contiguous(), k.contiguous(), v.contiguous(),
                    g=None if g is None else g.contiguous(), scale=1.0, cu_seqlens=cu_seqlens,
                    cu_seqlens_cpu=cu_seqlens_cpu)
    out = out.reshape(b, length, h, -1)[..., :e]
    return out.transpose(1, 2).to(wide)
