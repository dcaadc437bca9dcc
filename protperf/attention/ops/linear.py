"""Bidirectional linear attention (two matmuls; per segment via tiles) and the normalizer.

Shapes: ``q_prime, k_prime: (B, H, L, m)`` non-negative features, ``v: (B, H, L, dv)``,
``segment_ids: (B, L)`` or None. Outputs ``(B, H, L, dv)``. The normalizer rides as an extra
column of ones on the values (``augment_values``), so numerator and denominator come out of
the same matmuls; ``normalize`` divides in float32 (or float64) with a floor.
"""

from __future__ import annotations

import torch

from protperf.attention.ops.segments import segment_tiles

# Floor of the normalizer D_i. With stabilized features D_i is O(1/m) or larger unless every
# feature of query i underflowed against the keys (|q|, |k| in the hundreds); there the
# estimate is meaningless anyway, and the floor keeps outputs AND gradients finite
# (d out / d D = -num / D^2 overflows float32 for D below ~1e-19).
DENOMINATOR_FLOOR = 1e-12
# positions per tile of the segment-wise bidirectional attention
SEGMENT_TILE = 64


def augment_values(v: torch.Tensor) -> torch.Tensor:
    """[v, 1]: (B, H, L, dv) -> (B, H, L, dv + 1); the last column yields the normalizer."""
    return torch.cat([v, v.new_ones(*v.shape[:-1], 1)], dim=-1)


def normalize(out_aug: torch.Tensor) -> torch.Tensor:
    """(B, H, L, dv + 1) -> numerator / max(denominator, 1e-12), in float32 at least.

    Padding rows (0 / 0) give 0, never NaN/inf.
    """
    if out_aug.dtype not in (torch.float32, torch.float64):
        out_aug = out_aug.float()
    return out_aug[..., :-1] / out_aug[..., -1:].clamp_min(DENOMINATOR_FLOOR)


def bidirectional_unnormalized(
    q_prime: torch.Tensor, k_prime: torch.Tensor, v_aug: torch.Tensor
) -> torch.Tensor:
    """Q' (K'^T V_aug): two matmuls, never an L x L matrix; -> (B, H, L, e). Time O(L m e)."""
    return q_prime @ (k_prime.transpose(-2, -1) @ v_aug)


def segmented_bidirectional_unnormalized(
    q_prime: torch.Tensor, k_prime: torch.Tensor, v_aug: torch.Tensor, segment_ids: torch.Tensor
) -> torch.Tensor:
    """Block-diagonal Q' (K'^T V_aug): each query only sees the keys of its own segment.

    Every segment is cut into tiles of at most SEGMENT_TILE positions (``segment_tiles``):
    per-tile K'^T V sums are added per segment (index_add), read back per tile and
    multiplied by the tile's queries. Time O(L m e), memory O((L / T + S) m e): linear in L.
    The segment sums accumulate in float32 (float64 for float64 input) whatever the input
    dtype; the matmuls take the input dtype.
    """
    b, h, length, m = q_prime.shape
    e = v_aug.shape[-1]
    positions, owner = segment_tiles(segment_ids, SEGMENT_TILE)  # (T, tile), (T,)
    valid = (positions >= 0)[:, :, None, None]
    index = positions.clamp_min(0)

    def tiles(x: torch.Tensor) -> torch.Tensor:  # (B, H, L, k) -> (T, H, tile, k), pad 0
        flat = x.transpose(1, 2).reshape(b * length, h, x.shape[-1])
        return (flat[index] * valid.to(x.dtype)).transpose(1, 2)

    q_tiles, k_tiles, v_tiles = tiles(q_prime), tiles(k_prime), tiles(v_aug)
    wide = torch.float64 if q_prime.dtype == torch.float64 else torch.float32
    tile_sums = (k_tiles.transpose(-2, -1) @ v_tiles).to(wide)  # (T, H, m, e)
    num_segments = int(owner.max()) + 1
    segment_sums = tile_sums.new_zeros(num_segments, h, m, e).index_add(0, owner, tile_sums)
    out_tiles = q_tiles @ segment_sums[owner].to(q_tiles.dtype)  # (T, H, tile, e)
    out = out_tiles.new_zeros(b * length, h, e)
    flat_out = out_tiles.transpose(1, 2).reshape(-1, h, e)
    keep = positions.flatten() >= 0
    out = out.index_add(0, index.flatten()[keep], flat_out[keep])
    return out.reshape(b, length, h, e).transpose(1, 2)
