"""Which kernel a multi-head layer runs (one branch point), and the backend checks.

``attention_mode`` returns the kernel a layer's heads go through, one function of
``(q, k, v, projection, config, key_mask, segment_ids)`` -> (B, H, L, dv), chosen by one
``if`` chain:

- ``exact`` / ``exact_causal``: softmax via scaled_dot_product_attention (``ops/exact.py``);
- ``identity``: the values themselves;
- ``favor_linear`` / ``favor_chunked`` (``performer.py``): bidirectional / causal Performer
  that recomputes its features in backward: CPU, float32/float64, no segments, a fixed
  FAVOR+ projection (the fastest and leanest there);
- ``favor_bidirectional``: Performer from kept features, two matmuls (per segment via tiles):
  GPUs, bf16 autocast, segments, FAVOR++, no-projection ReLU;
- ``favor_scan``: causal Performer through the loop-free batched scan (``ops/causal_scan.py``):
  the same cases, causal;
- ``favor_fla``: causal Performer through flash-linear-attention's ``chunk_simple_gla``
  Triton kernels (``ops/causal_fla.py``, CUDA only).

A caller whose q, k, v are its own temporaries (the layer's projections: nothing reads them
after backward) asks for ``grads_in_place``: the recomputing kernels then write the
gradients of q, k, v over them, block by block, and the backward holds one set of
(B, H, L, d) heads instead of two (``ops/favor_linear.overwritable``).

``model.attention.backend`` picks among the causal ones: ``torch`` (chunked or scan), ``fla``,
or ``auto`` (``fla`` for CUDA tensors when fla imports and can run the kernel's backward there,
``torch`` otherwise). ``check_backend`` refuses an unusable ``fla`` when the layer is built.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from protperf.attention.config import FLA_MISSING, AttentionConfig
from protperf.attention.ops.causal_fla import fla_available, gated_backward_problem
from protperf.attention.ops.exact import exact_attention
from protperf.attention.performer import (
    compute_dtype,
    favor_bidirectional,
    favor_chunked,
    favor_fla,
    favor_linear,
    favor_scan,
)

Kernel = Callable[..., torch.Tensor]


def exact(q, k, v, projection, config, key_mask=None, segment_ids=None) -> torch.Tensor:
    """Bidirectional softmax attention (SDPA)."""
    return exact_attention(q, k, v, False, key_mask, segment_ids)


def exact_causal(q, k, v, projection, config, key_mask=None, segment_ids=None) -> torch.Tensor:
    """Causal softmax attention (SDPA)."""
    return exact_attention(q, k, v, True, key_mask, segment_ids)


def identity(q, k, v, projection, config, key_mask=None, segment_ids=None) -> torch.Tensor:
    """No attention: the values (a floor for benchmarks)."""
    return v


def attention_mode(
    config: AttentionConfig, causal: bool, q: torch.Tensor, segment_ids: torch.Tensor | None,
    grads_in_place: bool = False,
) -> Kernel:
    """The kernel a layer of ``config`` runs on heads q (B, H, L, d); see module docstring.
    grads_in_place: q, k, v are the caller's own; a recomputing kernel may overwrite them
    with their gradients."""
    if config.kind == "exact":
        return exact_causal if causal else exact
    if config.kind == "identity":
        return identity
    recompute = (not q.is_cuda and compute_dtype(q) is None and segment_ids is None
                 and config.feature_type != "favorpp" and not config.no_projection)
    if not causal:
        return _owning(favor_linear, grads_in_place) if recompute else favor_bidirectional
    if config.backend == "fla":
        if not q.is_cuda:
            raise ValueError("model.attention.backend='fla' runs on CUDA tensors only, got a "
                             f"{q.device.type} tensor (use backend=torch or auto)")
        return favor_fla
    if config.backend == "auto" and q.is_cuda and fla_available():
        gated = config.kind == "favor_softmax"
        if not (gated and gated_backward_problem(q.device)):
            return favor_fla
    return _owning(favor_chunked, grads_in_place) if recompute else favor_scan


def _owning(kernel: Kernel, grads_in_place: bool) -> Kernel:
    """A recomputing kernel, told that the heads are the caller's own when they are."""
    return partial(kernel, grads_in_place=True) if grads_in_place else kernel


def check_backend(config: AttentionConfig, causal: bool) -> None:
    """Refuse, when a layer is built, a ``fla`` backend that cannot run here.

    fla needs the package (and Triton), a CUDA GPU, and for softmax (gated) attention a
    Triton without fla's known wrong-gradient bug on Hopper GPUs (fla refuses that backward
    itself, but only at the first backward step).
    """
    if config.backend != "fla" or not (causal and config.is_performer):
        return
    if not fla_available():
        raise ValueError(FLA_MISSING)
    if not torch.cuda.is_available():
        raise ValueError("model.attention.backend='fla' needs a CUDA GPU; none is visible "
                         "(use backend=auto or torch)")
    if config.kind == "favor_softmax" and (problem := gated_backward_problem()):
        raise ValueError(f"model.attention.backend='fla' with attention.kind='favor_softmax': "
                         f"{problem} (or use backend=auto, which keeps softmax on torch here)")
