"""The same weights under another attention, and what each attention layer of a model sees.

:func:`with_attention` rebuilds a network with another attention kind (all kinds share their
parameters, so every weight carries over) and draws its random features from a given seed.
:func:`attention_io` records, for every attention layer, its input and its output in one
forward pass: the targets of attention transfer (:mod:`protperf.transfer.finetune`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from protperf.attention import AttentionConfig
from protperf.model.transformer import ProteinLanguageModel


def with_attention(
    model: ProteinLanguageModel, attention: AttentionConfig, seed: int = 0
) -> ProteinLanguageModel:
    """A copy of ``model`` whose blocks compute ``attention``; random features (Performer
    kinds) are drawn from ``seed`` without touching torch's global RNG. Eval mode."""
    config = dataclasses.replace(model.config, attention=attention)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        copy = type(model)(config, model.causal)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("feature_projection")}
    missing, unexpected = copy.load_state_dict(state, strict=False)
    leftover = [k for k in missing if not k.endswith("feature_projection")]
    if leftover or unexpected:
        raise ValueError(f"weights do not carry over: missing {leftover}, unexpected {unexpected}")
    return copy.to(next(model.parameters()).dtype).eval()


@dataclass
class AttentionCall:
    """One attention layer's call: positional ``args`` (the input x first), keyword
    ``kwargs`` (attention_mask, rotary, ...) and its ``output`` (B, L, D)."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    output: torch.Tensor


@torch.no_grad()
def attention_io(
    model: ProteinLanguageModel, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, list[AttentionCall]]:
    """One forward pass of ``model`` -> (logits (B, L, V), the call of every attention layer,
    first to last). Whatever the block layout (LayerNorm before or after the sublayers), the
    recorded input is exactly what the layer received."""
    calls: list[AttentionCall] = []

    def record(module, args, kwargs, output):
        calls.append(AttentionCall(tuple(args), dict(kwargs), output))

    handles = [attn.register_forward_hook(record, with_kwargs=True)
               for attn in model.attention_modules()]
    try:
        logits = model(input_ids, attention_mask=attention_mask)
    finally:
        for handle in handles:
            handle.remove()
    return logits, calls
