"""Segments of packed windows: attention that never crosses a protein boundary.

A window of concatenated proteins carries ``segment_ids: (B, L)`` int64 (from
``protperf.data.batching.segment_ids_from_bos``), non-decreasing
along each row (one id per protein; padding may keep the last id). Attention between
positions i and j is allowed only when ``segment_ids[b, i] == segment_ids[b, j]``.
Everything here is integer bookkeeping or a per-segment reduction, linear in L.
"""

from __future__ import annotations

import torch


def same_segment(ids_a: torch.Tensor, ids_b: torch.Tensor) -> torch.Tensor:
    """Boolean (B, La, Lb): ids_a (B, La) equal to ids_b (B, Lb) pairwise."""
    return ids_a.unsqueeze(-1) == ids_b.unsqueeze(-2)


def segmented_running_max(values: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
    """Running max over j' <= j within j's segment; values (B, H, L) (may hold -inf).

    One cummax on values lifted by a per-segment offset larger than the range of the finite
    values, so each segment starts above everything before it; computed in float64 so the
    offsets lose nothing of float32 values. -inf entries stay -inf. No device-to-host sync.
    """
    if values.numel() == 0:
        return values
    work = values.double()
    finite = torch.isfinite(work)
    # min and max of the finite values (inf / -inf when there are none: all masked below)
    low = work.masked_fill(~finite, float("inf")).amin()
    span = work.masked_fill(~finite, float("-inf")).amax() - low + 1.0
    offset = segment_ids[:, None, :].to(work.dtype) * span
    lifted = torch.where(finite, work - low + 1.0 + offset, torch.zeros_like(work))
    running = torch.cummax(lifted, dim=-1).values - offset + low - 1.0
    # positions before the first finite value of their segment: -inf, as cummax of -inf
    seen = torch.cummax((finite * (segment_ids[:, None, :] + 1)), dim=-1).values
    running = running.masked_fill(seen != segment_ids[:, None, :] + 1, float("-inf"))
    return running.to(values.dtype)


def segment_max(values: torch.Tensor, segment_ids: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Max of values (B, H, L) over each segment -> (B, H, S), -inf for empty segments."""
    b, h, _ = values.shape
    index = segment_ids[:, None, :].expand_as(values)
    out = values.new_full((b, h, num_segments), float("-inf"))
    return out.scatter_reduce(-1, index, values, reduce="amax", include_self=True)


def dense_segment_ids(segment_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Renumber ids to 0..S-1 per row (order kept) -> ((B, L) int64, S = max segments per row)."""
    starts = torch.ones_like(segment_ids, dtype=torch.int64)
    starts[:, 1:] = (segment_ids[:, 1:] != segment_ids[:, :-1]).to(torch.int64)
    dense = starts.cumsum(-1) - 1
    return dense, int(dense.max()) + 1 if dense.numel() else 1


def segment_tiles(segment_ids: torch.Tensor, tile: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut every segment of every row into tiles of at most ``tile`` positions.

    segment_ids: (B, L) non-decreasing per row. Returns (positions, owner): positions
    (T, tile) int64 indices into the flattened (B L) axis, -1 for tile padding; owner (T,)
    the flattened segment index (row * S + dense id) of each tile. T <= B L / tile + B S,
    so the tiles hold at most B L + B S tile positions: linear in L.
    """
    b, length = segment_ids.shape
    dense, num_segments = dense_segment_ids(segment_ids)
    flat_segment = (dense + torch.arange(b, device=dense.device)[:, None] * num_segments).flatten()
    position = torch.arange(b * length, device=dense.device)
    new_segment = torch.ones_like(flat_segment, dtype=torch.bool)
    new_segment[1:] = flat_segment[1:] != flat_segment[:-1]
    segment_start = torch.cummax(torch.where(new_segment, position, 0), 0).values
    offset = position - segment_start  # position within its segment
    new_tile = new_segment | (offset % tile == 0)
    tile_index = new_tile.to(torch.int64).cumsum(0) - 1
    num_tiles = int(tile_index[-1]) + 1
    slot = offset % tile
    positions = torch.full((num_tiles, tile), -1, dtype=torch.int64, device=dense.device)
    positions[tile_index, slot] = position
    owner = torch.zeros(num_tiles, dtype=torch.int64, device=dense.device)
    owner[tile_index] = flat_segment
    return positions, owner


def cu_seqlens_from_segments(segment_ids: torch.Tensor) -> torch.Tensor:
    """Start offsets of every segment in the flattened (B L) axis, plus B L: (N + 1,) int64.

    Row boundaries always start a new sequence (the form of flash-attention's ``cu_seqlens``).
    """
    b, length = segment_ids.shape
    starts = torch.ones_like(segment_ids, dtype=torch.bool)
    starts[:, 1:] = segment_ids[:, 1:] != segment_ids[:, :-1]
    offsets = torch.nonzero(starts.flatten()).flatten()
    end = torch.tensor([b * length], dtype=offsets.dtype, device=offsets.device)
    return torch.cat([offsets, end]).to(torch.int64)
