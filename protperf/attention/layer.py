"""Multi-head attention whose parameters are the same for every attention kind.

INTERFACE STUB: exact attention only; the Performer kinds are being implemented.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from protperf.attention.config import AttentionConfig

Rotary = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class MultiHeadAttention(nn.Module):
    """q/k/v/out projections + one attention kind.

    Args:
        dim: model width D.
        num_heads: H; must divide D.
        config: which attention to compute.
        causal: unidirectional (each position sees itself and the past) if True.
        dropout: dropout on the output projection.
    """

    def __init__(
        self, dim: int, num_heads: int, config: AttentionConfig, causal: bool, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"num_heads={num_heads} does not divide dim={dim}")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.config, self.causal = config, causal
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        rotary: Rotary | None = None,
    ) -> torch.Tensor:
        """x: (B, L, D); attention_mask: (B, L) bool, True at real tokens; -> (B, L, D)."""
        b, length, _ = x.shape
        q, k, v = (
            proj(x).view(b, length, self.num_heads, self.head_dim).transpose(1, 2)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        if rotary is not None:
            q, k = rotary(q, k)
        mask = None
        if attention_mask is not None:
            mask = attention_mask[:, None, None, :]
            if self.causal:
                mask = mask & torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal and mask is None)
        out = out.transpose(1, 2).reshape(b, length, self.dim)
        return self.dropout(self.out_proj(out))

    @torch.no_grad()
    def redraw_features(self) -> None:
        """Draw new random features (no-op for exact attention)."""
