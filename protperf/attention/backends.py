"""Causal Performer kernels per backend, chosen once when a layer is built.

A causal kernel maps (q', k', v_aug, s, segment_ids, compute_dtype) -> the unnormalized
(B, H, L, e) float32 sums of ``ops/causal_scan.py``. Backends (``model.attention.backend``):

- ``torch``: on CPU in float32 without segments the in-place loop kernel
  (``ops/causal_loop.py``, the fastest there); otherwise the loop-free scan
  (``ops/causal_scan.py``: GPUs, bfloat16, segments).
- ``fla``: flash-linear-attention's ``chunk_simple_gla`` Triton kernels (CUDA only).
- ``auto``: ``fla`` for CUDA tensors when fla imports, ``torch`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from protperf.attention.config import BACKENDS
from protperf.attention.ops.causal_fla import (
    GATED_BACKWARD_SUPPORTED,
    fla_available,
    gated_causal_attention_unnormalized,
)
from protperf.attention.ops.causal_loop import causal_linear_attention_unnormalized
from protperf.attention.ops.causal_scan import causal_scan_attention_unnormalized

CausalKernel = Callable[..., torch.Tensor]


class TorchCausalKernel:
    """The torch backend: loop kernel for CPU float32 without segments, else the scan."""

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size

    def __call__(self, q_prime, k_prime, v_aug, log_scale, segment_ids=None, compute_dtype=None):
        if (segment_ids is None and not q_prime.is_cuda and compute_dtype in (None, q_prime.dtype)
                and q_prime.dtype in (torch.float32, torch.float64)):
            return causal_linear_attention_unnormalized(q_prime, k_prime, v_aug, log_scale,
                                                        self.chunk_size)
        return causal_scan_attention_unnormalized(q_prime, k_prime, v_aug, log_scale,
                                                  self.chunk_size, segment_ids, compute_dtype)


class FlaCausalKernel:
    """The fla backend: chunk_simple_gla on CUDA tensors; CPU tensors are refused."""

    def __call__(self, q_prime, k_prime, v_aug, log_scale, segment_ids=None, compute_dtype=None):
        if not q_prime.is_cuda:
            raise ValueError("model.attention.backend='fla' runs on CUDA tensors only, got a "
                             f"{q_prime.device.type} tensor (use backend=torch or auto)")
        return gated_causal_attention_unnormalized(q_prime, k_prime, v_aug, log_scale,
                                                   segment_ids, compute_dtype=compute_dtype)


class AutoCausalKernel:
    """fla for CUDA tensors when it imports, else the torch kernel.

    Softmax (gated) attention stays on torch where fla refuses its gated backward (Hopper
    with Triton 3.4 <= v < 3.7.1 and no tilelang; ``causal_fla.GATED_BACKWARD_SUPPORTED``).
    """

    def __init__(self, chunk_size: int) -> None:
        self.torch_kernel = TorchCausalKernel(chunk_size)
        self.fla_kernel = FlaCausalKernel() if fla_available() else None

    def __call__(self, q_prime, k_prime, v_aug, log_scale, segment_ids=None,
                 compute_dtype=None):
        use_fla = (self.fla_kernel is not None and q_prime.is_cuda
                   and (log_scale is None or GATED_BACKWARD_SUPPORTED))
        kernel = self.fla_kernel if use_fla else self.torch_kernel
        return kernel(q_prime, k_prime, v_aug, log_scale, segment_ids, compute_dtype)


def causal_kernel(backend: str, chunk_size: int) -> CausalKernel:
    """The causal kernel of ``model.attention.backend``; fla's preconditions checked here."""
    if backend == "torch":
        return TorchCausalKernel(chunk_size)
    if backend == "auto":
        return AutoCausalKernel(chunk_size)
    if backend == "fla":
        if not fla_available():
            raise ValueError("model.attention.backend='fla' needs flash-linear-attention and "
                             "Triton: pip install 'protperf[gpu]' (or use backend=auto)")
        if not torch.cuda.is_available():
            raise ValueError("model.attention.backend='fla' needs a CUDA GPU; none is visible "
                             "(use backend=auto or torch)")
        return FlaCausalKernel()
    raise ValueError(f"model.attention.backend={backend!r} is not one of {', '.join(BACKENDS)}")


def resolved_backend(backend: str, device: torch.device | str) -> str:
    """The backend a causal Performer layer runs on a device: ``torch`` or ``fla``."""
    if backend == "auto":
        return "fla" if torch.device(device).type == "cuda" and fla_available() else "torch"
    return backend
