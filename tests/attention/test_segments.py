"""Packed windows without cross-protein attention: segment ops and the layer."""

import pytest
import torch

from protperf.attention import AttentionConfig, MultiHeadAttention
from protperf.attention.ops.linear import (
    augment_values,
    bidirectional_unnormalized,
    segmented_bidirectional_unnormalized,
)
from protperf.attention.ops.segments import (
    cu_seqlens_from_segments,
    segment_tiles,
    segmented_running_max,
)
from protperf.data.batching import segment_ids_from_bos
from tests.attention.helpers import random_features
from tests.attention.reference import linear_attention_weights

ALL_KINDS = ["exact", "favor_softmax", "favor_relu", "identity"]


def test_segment_ids_from_bos_count_bos_tokens():
    tokens = torch.tensor([[0, 5, 6, 0, 7, 0, 1, 1], [4, 0, 5, 5, 5, 5, 1, 1]])
    ids = segment_ids_from_bos(tokens, bos_id=0)
    assert ids.tolist() == [[0, 0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 1, 1, 1, 1, 1]]


def test_segmented_running_max_restarts_per_segment():
    values = torch.tensor([[[3.0, 1.0, 2.0, float("-inf"), 0.5, 9.0, 4.0]]])
    ids = torch.tensor([[0, 0, 0, 1, 1, 2, 2]])
    out = segmented_running_max(values, ids)
    expected = torch.tensor([[[3.0, 3.0, 3.0, float("-inf"), 0.5, 9.0, 9.0]]])
    assert torch.equal(out, expected)


def test_segment_tiles_cover_every_position_once_within_one_segment():
    ids = torch.tensor([[0] * 5 + [1] * 9 + [2], [3] * 15])
    positions, owner = segment_tiles(ids, tile=4)
    flat = positions[positions >= 0]
    assert sorted(flat.tolist()) == list(range(30))
    flat_ids = (ids - ids[:, :1]).flatten() + torch.tensor([0, 3]).repeat_interleave(15)
    segment_of_owner = {}
    for tile, segment in zip(positions, owner, strict=True):
        members = tile[tile >= 0]
        assert (flat_ids[members] == flat_ids[members[0]]).all() and len(members) <= 4
        # one owner index per segment, the same for all of its tiles
        assert segment_of_owner.setdefault(int(segment), int(flat_ids[members[0]])) == int(
            flat_ids[members[0]])
    assert len(segment_of_owner) == 4  # three segments in row 0, one in row 1


def test_cu_seqlens_start_every_segment_and_every_row():
    ids = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 2, 2]])
    assert cu_seqlens_from_segments(ids).tolist() == [0, 2, 5, 8, 10]


@pytest.mark.parametrize("length", [13, 150])  # 150: several tiles per segment
def test_segmented_bidirectional_is_block_diagonal_linear_attention(length):
    q, k, v, _ = random_features(length, m=5, dv=4)
    ids = torch.tensor([[0] * 3 + [1] * (length - 4) + [2], [0] * length])
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    ref_leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    v_aug = augment_values(leaves[2])
    out = segmented_bidirectional_unnormalized(leaves[0], leaves[1], v_aug, ids)
    expected = linear_attention_weights(*ref_leaves[:2], False, None, ids) @ augment_values(
        ref_leaves[2])
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)
    out.pow(2).sum().backward()
    expected.pow(2).sum().backward()
    for got, want in zip(leaves, ref_leaves, strict=True):
        torch.testing.assert_close(got.grad, want.grad, atol=1e-9, rtol=1e-9)
    # a single segment per row is the plain two-matmul attention
    single = torch.zeros(2, length, dtype=torch.int64)
    torch.testing.assert_close(
        segmented_bidirectional_unnormalized(q, k, augment_values(v), single),
        bidirectional_unnormalized(q, k, augment_values(v)), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_a_proteins_outputs_do_not_depend_on_its_neighbours(kind, causal):
    torch.manual_seed(0)
    cfg = AttentionConfig(kind=kind, num_features=32, chunk_size=4)
    layer = MultiHeadAttention(32, 4, cfg, causal=causal).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 30, 32, generator=gen)
    ids = torch.tensor([[0] * 9 + [1] * 12 + [2] * 9])  # the protein: positions 9..20
    changed = x.clone()
    changed[:, :9] = 3.0 * torch.randn(1, 9, 32, generator=gen)  # larger neighbours
    changed[:, 21:] = 3.0 * torch.randn(1, 9, 32, generator=gen)
    with torch.no_grad():
        out, out_changed = layer(x, segment_ids=ids), layer(changed, segment_ids=ids)
        alone = layer(x[:, 9:21])
        leaky = layer(changed)
    torch.testing.assert_close(out[:, 9:21], out_changed[:, 9:21], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 9:21], alone, atol=1e-5, rtol=1e-5)
    if kind != "identity":  # without segments the neighbours do leak in
        assert (leaky[:, 9:21] - out_changed[:, 9:21]).abs().max() > 1e-3


def test_segments_with_padding_keep_padding_rows_zero():
    torch.manual_seed(0)
    layer = MultiHeadAttention(16, 2, AttentionConfig(kind="favor_softmax", num_features=8),
                               causal=True)
    x = torch.randn(2, 12, 16)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 8:] = False
    ids = torch.tensor([[0] * 6 + [1] * 6, [0] * 4 + [1] * 8])
    q, k, v = layer.project(x)
    out = layer.attend(q, k, v, mask, ids)
    assert torch.isfinite(out).all() and (out[1, :, 8:] == 0).all()
