"""Rotary position embedding (RoPE), applied to queries and keys inside attention."""

from __future__ import annotations

import torch
from torch import nn


def rotary_angles(
    length: int, head_dim: int, base: float, device=None, start: int = 0
) -> torch.Tensor:
    """Angles position * base^(-2i/head_dim) of positions start..start+L-1:
    (L, head_dim / 2), float32."""
    exponents = torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim
    inv_freq = base ** (-exponents)
    positions = torch.arange(start, start + length, device=device, dtype=torch.float32)
    return torch.outer(positions, inv_freq)


def apply_rotary(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs (x[2i], x[2i+1]) of x: (B, H, L, Dh) by angles: (L, Dh/2)."""
    pairs = x.float().unflatten(-1, (-1, 2))
    cos, sin = angles.cos(), angles.sin()
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return rotated.flatten(-2).to(x.dtype)


class RotaryEmbedding(nn.Module):
    """Callable ``(q, k) -> (q, k)`` on (B, H, L, Dh) tensors at positions start..start+L-1
    (``start`` > 0: decoding one token at a time); has no parameters."""

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head size, got {head_dim}")
        self.head_dim, self.base = head_dim, base

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, start: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        angles = rotary_angles(q.shape[-2], self.head_dim, self.base, q.device, start)
        return apply_rotary(q, angles), apply_rotary(k, angles)


def pairs_from_halves(head_dim: int) -> torch.Tensor:
    """Index order (head_dim,) that turns a head laid out for the rotate-half convention
    (fair-esm, HF ESM, GPT-NeoX: dims i and i + head_dim/2 rotate together) into protperf's
    consecutive pairs (dims 2i and 2i+1 rotate together, at the same frequency):
    ``x_pairs = x_halves[..., order]``; ``order.argsort()`` goes back. Permuting the query and
    key projections' output rows per head this way leaves every attention score unchanged."""
    half = head_dim // 2
    return torch.stack((torch.arange(half), torch.arange(half) + half), dim=1).flatten()
