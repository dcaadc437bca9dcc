"""Per-layer attention of a trained model, read through forward pre-hooks.

Every :class:`protperf.attention.MultiHeadAttention` of a model is hooked; when the model runs,
each layer's input ``(x, attention_mask, rotary)`` is handed to a callback, which reads the
module's own attention (``implicit_attention.attention_matrix`` / ``feature_maps``, or the
module's ``project``).  So the analysis sees exactly the attention the layer applies (same
scaling, rotary, masks, random features) without any change to the model.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from protperf.analysis.implicit_attention import attention_matrix
from protperf.attention import MultiHeadAttention

LayerCallback = Callable[[int, MultiHeadAttention, torch.Tensor, torch.Tensor | None, object], None]
PERFORMER_KINDS = ("favor_softmax", "favor_relu")


def attention_modules(model: nn.Module) -> list[MultiHeadAttention]:
    """The model's attention modules, first layer to last."""
    if hasattr(model, "attention_modules"):
        modules = list(model.attention_modules())
    else:
        modules = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    if not modules:
        raise ValueError(f"{type(model).__name__} has no MultiHeadAttention module to analyze")
    return modules


@contextmanager
def layer_inputs(model: nn.Module, callback: LayerCallback) -> Iterator[list[MultiHeadAttention]]:
    """Within the block, every attention module's call runs ``callback(layer, module, x, mask,
    rotary)`` first (under ``torch.no_grad``)."""
    modules = attention_modules(model)
    handles = []
    for layer, module in enumerate(modules):
        signature = inspect.signature(module.forward)

        def hook(mod, args, kwargs, layer=layer, signature=signature):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
            with torch.no_grad():
                callback(layer, mod, arguments["x"], arguments.get("attention_mask"),
                         arguments.get("rotary"))

        handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield modules
    finally:
        for handle in handles:
            handle.remove()


def run_model(model: nn.Module, tokens: torch.Tensor, attention_mask: torch.Tensor) -> None:
    """One forward pass (eval mode, no grad); ``model(input_ids, attention_mask=...)``."""
    with torch.no_grad():
        model(tokens, attention_mask=attention_mask)


@torch.no_grad()
def attention_maps(
    model: nn.Module, tokens: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Attention of every layer and head: tokens (B, L) -> (layers, B, H, L, L).

    Exact softmax for exact layers; the implicit normalized q'_i.k'_j / D_i for Performers.
    O(L^2) memory: for plotting single proteins.
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(tokens, dtype=torch.bool)
    maps: dict[int, torch.Tensor] = {}

    def collect(layer, module, x, mask, rotary):
        maps[layer] = attention_matrix(module, x, mask, rotary).float().cpu()

    was_training = model.training
    model.eval()
    try:
        with layer_inputs(model, collect) as modules:
            run_model(model, tokens, attention_mask)
    finally:
        model.train(was_training)
    if len(maps) != len(modules):
        raise RuntimeError(f"only {len(maps)} of {len(modules)} attention modules ran")
    return torch.stack([maps[layer] for layer in range(len(modules))])


def exact_attention_rows(
    q: torch.Tensor,
    k: torch.Tensor,
    key_mask: torch.Tensor | None,
    causal: bool,
    block_size: int,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Softmax attention softmax(q k^T / sqrt(d)) one block of C query rows at a time.

    q, k: (B, H, L, d) projected heads (rotary applied); key_mask: (B, L) bool.
    Yields (start, rows (B, H, C, L)); memory O(B H C L).  A query without any allowed key
    (padding) gets a uniform row, as in the attention library; such rows are not analyzed.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    length = q.shape[2]
    positions = torch.arange(length, device=q.device)
    for start in range(0, length, block_size):
        block = q[:, :, start : start + block_size]
        scores = (block @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, C, L)
        allowed = torch.ones(1, 1, block.shape[2], length, dtype=torch.bool, device=q.device)
        if causal:
            query_positions = positions[start : start + block.shape[2], None]
            allowed = allowed & (positions[None, :] <= query_positions)
        if key_mask is not None:
            allowed = allowed & key_mask.bool()[:, None, None, :]
        allowed = allowed | ~allowed.any(dim=-1, keepdim=True)
        yield start, torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
