"""A learned per-head linear map in front of the Performer features that folds into W_q / W_k.

Attention transfer may train, instead of the whole query and key projections, one d x d
matrix A_h per head (identity at the start) applied to that head's query (and another to its
key): q_h = A_h (W_q,h x + b_q,h). It is written as a ``torch.nn.utils.parametrize``
parametrization of ``q_proj.weight`` / ``q_proj.bias`` (and ``k_proj``), so the model code is
untouched, and :func:`fold_head_maps` writes A_h W_q,h and A_h b_q,h back into plain weights:
the converted model is an ordinary checkpoint with the same tensors as before, and computes
exactly what it computed while training.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from protperf.model.transformer import ProteinLanguageModel

PROJECTIONS = ("q_proj", "k_proj")


class HeadMap(nn.Module):
    """A_h for every head h: ``maps`` (H, d, d), identity at the start.

    As a parametrization it maps a projection's weight (H*d, D_in) to blockdiag(A) @ weight and
    its bias (H*d,) to blockdiag(A) @ bias; one instance serves both, so they share A.
    """

    def __init__(self, num_heads: int, head_dim: int) -> None:
        super().__init__()
        self.maps = nn.Parameter(torch.eye(head_dim).repeat(num_heads, 1, 1))

    def forward(self, tensor: torch.Tensor) -> torch.Tensor:
        heads, dim, _ = self.maps.shape
        maps = self.maps.to(tensor.dtype)
        if tensor.dim() == 1:  # bias (H*d,)
            return torch.einsum("hij,hj->hi", maps, tensor.view(heads, dim)).reshape(-1)
        out = torch.einsum("hij,hjk->hik", maps, tensor.view(heads, dim, -1))
        return out.reshape(heads * dim, -1)


def add_head_maps(model: ProteinLanguageModel) -> list[nn.Parameter]:
    """Put an identity :class:`HeadMap` on the query and key projections of every attention
    layer of ``model`` (in place; the model computes the same until the maps train) and return
    the maps' parameters, first layer's query map first."""
    parameters = []
    for attn in model.attention_modules():
        for name in PROJECTIONS:
            projection = getattr(attn, name)
            head_map = HeadMap(attn.num_heads, attn.head_dim).to(projection.weight)
            parametrize.register_parametrization(projection, "weight", head_map)
            if projection.bias is not None:
                parametrize.register_parametrization(projection, "bias", head_map)
            parameters.append(head_map.maps)
    return parameters


def has_head_maps(model: ProteinLanguageModel) -> bool:
    """Whether any query / key projection of ``model`` carries a head map."""
    return any(parametrize.is_parametrized(getattr(attn, name))
               for attn in model.attention_modules() for name in PROJECTIONS)


@torch.no_grad()
def fold_head_maps(model: ProteinLanguageModel) -> ProteinLanguageModel:
    """Write every head map into its projection's weight and bias and remove it (in place):
    afterwards ``model`` has plain ``nn.Linear`` projections and its state dict the usual keys.
    Returns ``model``."""
    for attn in model.attention_modules():
        for name in PROJECTIONS:
            projection = getattr(attn, name)
            if parametrize.is_parametrized(projection):
                for tensor in list(projection.parametrizations):
                    parametrize.remove_parametrizations(projection, tensor,
                                                        leave_parametrized=True)
    return model
