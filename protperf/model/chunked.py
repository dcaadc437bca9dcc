"""Inference over long sequences in chunks of positions: the position-wise parts of a block
(feed-forward, LayerNorm, residual sums) and the LM head, a chunk of L at a time.

Without autograd (``torch.no_grad`` / ``torch.inference_mode``) and in eval mode nothing needs
a whole (B, L, ffn_dim) MLP hidden or a whole (B, L, vocab) logits tensor: the model's
position-wise functions run on ``chunk_length`` positions at a time and write into one (B, L,
D_out) output, so memory is O(L D) plus one chunk's hidden. The values equal the whole-
sequence path up to the rounding of matrix products over fewer rows (a few 1e-8 in float32;
``tests/model/test_chunked_inference.py``). Training, and anything under autograd or in
training mode (dropout), keeps the whole-sequence path unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

#: bytes of one chunk's widest activation (the (B, n, ffn_dim) MLP hidden); n follows from it
CHUNK_BYTES = 8 * 2**20
#: fewest positions per chunk
MIN_CHUNK = 64

PositionWise = Callable[[torch.Tensor], torch.Tensor]


def chunks_apply(module: nn.Module) -> bool:
    """Whether ``module`` runs its chunked inference path: no autograd and eval mode."""
    return not torch.is_grad_enabled() and not module.training


def chunk_length(batch: int, width: int, itemsize: int) -> int:
    """Positions per chunk for a widest activation of ``width`` features per position."""
    return max(MIN_CHUNK, CHUNK_BYTES // max(1, batch * width * itemsize))


def position_chunks(length: int, size: int) -> list[slice]:
    """Consecutive slices of at most ``size`` positions covering 0..length-1."""
    return [slice(start, min(start + size, length)) for start in range(0, length, size)]


def positionwise(fn: PositionWise, x: torch.Tensor, width: int) -> torch.Tensor:
    """``fn`` applied to x (B, L, D) a chunk of positions at a time -> (B, L, D_out).

    ``fn`` must act on each position alone ((B, n, D) -> (B, n, D_out)); ``width``: its widest
    activation per position, which sets the chunk length."""
    b, length, _ = x.shape
    size = chunk_length(b, width, x.element_size())
    if length <= size:
        return fn(x)
    out = None
    for sl in position_chunks(length, size):
        part = fn(x[:, sl])
        if out is None:
            out = part.new_empty(b, length, part.shape[-1])
        out[:, sl] = part
    return out


def add_positionwise_(x: torch.Tensor, fn: PositionWise, width: int) -> torch.Tensor:
    """x += fn(x) a chunk of positions at a time, in place (x: (B, L, D), a tensor the caller
    owns); returns x. ``fn`` and ``width`` as in ``positionwise``."""
    b, length, _ = x.shape
    for sl in position_chunks(length, chunk_length(b, width, x.element_size())):
        part = x[:, sl]
        part += fn(part)
    return x
