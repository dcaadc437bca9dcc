"""Pieces of imported pretrained architectures around the blocks: the LM-head transform and
ESM-2's token-dropout rescaling of the embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: The fraction of tokens ESM-2 replaced by ``<mask>`` in training (15 % selected, 80 % masked).
ESM_MASK_RATIO_TRAIN = 0.15 * 0.8


class LMHeadTransform(nn.Module):
    """Dense + exact (erf) GELU + LayerNorm before the vocabulary projection (ESM-2's
    RobertaLMHead, BERT's ``cls.predictions.transform``): (B, L, D) -> (B, L, D)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(F.gelu(self.dense(x)))


def token_dropout(
    x: torch.Tensor,
    input_ids: torch.Tensor,
    mask_id: int,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """ESM-2's token dropout: zero the embeddings of ``<mask>`` tokens and rescale each
    sequence by (1 - 0.12) / (1 - its fraction of masked real tokens), as fair-esm does.

    x: (B, L, D) token embeddings; input_ids: (B, L); attention_mask: (B, L) bool, True at real
    tokens (None: all real). Returns (B, L, D).
    """
    masked = input_ids == mask_id
    x = x.masked_fill(masked.unsqueeze(-1), 0.0)
    if attention_mask is None:
        lengths = torch.full_like(input_ids[:, 0], input_ids.shape[1])
    else:
        lengths = attention_mask.sum(-1)
    observed = masked.sum(-1).to(x.dtype) / lengths
    return x * (1 - ESM_MASK_RATIO_TRAIN) / (1 - observed)[:, None, None]
