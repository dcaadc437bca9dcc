"""Per-layer attention of a trained model, read through forward pre-hooks.

Every :class:`protperf.attention.MultiHeadAttention` of a model is hooked; when the model runs,
each layer's input ``(x, attention_mask, rotary)`` is handed to a callback, which reads the
module's own attention (``MultiHeadAttention.attention_weights`` / ``attention_weight_rows`` /
``performer_features``).  So the analysis sees exactly the attention the layer applies (same
scaling, rotary, masks, random features) without any change to the model.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

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
        maps[layer] = module.attention_weights(x, mask, rotary).float().cpu()

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
