"""Which computation a multi-head layer runs: the attention mode, and the backend checks.

A layer's heads go through exactly one mode (``attention_mode``), dispatched with one
``if mode == ...`` branch (``layer.py``, ``performer.py``):

- ``exact``: softmax via scaled_dot_product_attention (``ops/exact.py``);
- ``identity``: the values themselves;
- ``bidirectional``: Performer, two matmuls (per segment via tiles; ``ops/linear.py``);
- ``loop``: causal Performer, the in-place chunked kernel (``ops/causal_loop.py``), the
  fastest on CPU in float32/float64 without segments;
- ``scan``: causal Performer, the loop-free batched scan (``ops/causal_scan.py``): GPUs,
  bf16 autocast, segments;
- ``fla``: causal Performer through flash-linear-attention's ``chunk_simple_gla`` Triton
  kernels (``ops/causal_fla.py``, CUDA only).

``model.attention.backend`` picks among the causal ones: ``torch`` (loop or scan), ``fla``, or
``auto`` (``fla`` for CUDA tensors when fla imports and can run the kernel's backward there,
``torch`` otherwise). ``check_backend`` refuses an unusable ``fla`` when the layer is built.
"""

from __future__ import annotations

import torch

from protperf.attention.config import FLA_MISSING, AttentionConfig
from protperf.attention.ops.causal_fla import fla_available, gated_backward_problem

MODES = ("exact", "identity", "bidirectional", "loop", "scan", "fla")


def low_precision_dtype(device_type: str) -> torch.dtype | None:
    """bfloat16 when bf16 autocast is active for the device type, else None (float32).

    float16 autocast keeps Performer attention in float32: the gradient of the division by
    a small normalizer (num / D^2) overflows float16's range (max 65504), not bfloat16's.
    """
    if not torch.is_autocast_enabled(device_type):
        return None
    dtype = torch.get_autocast_dtype(device_type)
    return dtype if dtype == torch.bfloat16 else None


def compute_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The matmul dtype of Performer attention on heads x: bfloat16 under bf16 autocast
    (float64 heads excepted), else None (the features' float32/float64)."""
    return None if x.dtype == torch.float64 else low_precision_dtype(x.device.type)


def attention_mode(
    config: AttentionConfig, causal: bool, q: torch.Tensor, segment_ids: torch.Tensor | None
) -> str:
    """The mode (one of MODES) a layer of ``config`` runs on heads q (B, H, L, d)."""
    if config.kind in ("exact", "identity"):
        return config.kind
    if not causal:
        return "bidirectional"
    if config.backend == "fla":
        if not q.is_cuda:
            raise ValueError("model.attention.backend='fla' runs on CUDA tensors only, got a "
                             f"{q.device.type} tensor (use backend=torch or auto)")
        return "fla"
    if config.backend == "auto" and q.is_cuda and fla_available():
        gated = config.kind == "favor_softmax"
        if not (gated and gated_backward_problem(q.device)):
            return "fla"
    if q.is_cuda or segment_ids is not None or compute_dtype(q) is not None:
        return "scan"
    return "loop"


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
