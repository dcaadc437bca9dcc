"""The attention a layer applies, read from the layer: Performer features and L x L maps."""

import pytest
import torch

from tests.attention.reference import linear_attention_weights, softmax_attention_matrix
from tests.attention.test_layer import ALL_KINDS, DIM, HEADS, PERFORMER_KINDS, inputs, make


def padded_mask(length=12, real=9):
    mask = torch.ones(2, length, dtype=torch.bool)
    mask[1, real:] = False
    return mask


def output_through(layer, attn, x):
    """The layer's output computed from an explicit (B, H, L, L) attention matrix."""
    _, _, v = layer.project(x)
    b, length, _ = x.shape
    return layer.out_proj((attn @ v).transpose(1, 2).reshape(b, length, DIM))


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("causal", [False, True])
def test_attention_weights_reproduce_forward(kind, causal):
    layer = make(kind, causal).double()
    x = inputs(length=12, dtype=torch.float64)
    mask = padded_mask()
    attn = layer.attention_weights(x, mask)
    assert attn.shape == (2, HEADS, 12, 12)
    torch.testing.assert_close(layer(x, mask), output_through(layer, attn, x), atol=1e-10, rtol=0)
    assert (attn[1, :, 9:] == 0).all()  # padding query rows
    assert (attn[..., 9:][1] == 0).all()  # padding keys
    real_rows = attn[0].sum(-1)
    torch.testing.assert_close(real_rows, torch.ones_like(real_rows))
    if causal:
        assert (attn.triu(1) == 0).all()


@pytest.mark.parametrize("kind", PERFORMER_KINDS)
@pytest.mark.parametrize("causal", [False, True])
def test_implicit_weights_equal_the_oracle_on_the_layers_features(kind, causal):
    layer = make(kind, causal).double()
    x = inputs(length=12, dtype=torch.float64)
    mask = padded_mask()
    q_prime, k_prime = layer.performer_features(x, mask)
    assert q_prime.shape == k_prime.shape == (2, HEADS, 12, 64)
    assert (k_prime[1, :, 9:] == 0).all()
    weights = linear_attention_weights(q_prime, k_prime, causal)
    expected = weights / weights.sum(-1, keepdim=True)
    attn = layer.attention_weights(x, mask)
    torch.testing.assert_close(attn[0], expected[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(attn[1, :, :9], expected[1, :, :9], atol=1e-12, rtol=0)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("block_size", [1, 5, 12, 50])
def test_exact_rows_in_blocks_equal_the_oracle_softmax(causal, block_size):
    layer = make("exact", causal).double()
    x = inputs(length=12, dtype=torch.float64)
    mask = padded_mask()
    blocks = list(layer.attention_weight_rows(x, mask, block_size=block_size))
    assert [start for start, _ in blocks] == list(range(0, 12, block_size))
    rows = torch.cat([r for _, r in blocks], 2)
    q, k, _ = layer.project(x)
    reference = softmax_attention_matrix(q, k, causal, mask)
    real = mask[:, None, :, None].expand_as(rows)
    torch.testing.assert_close(rows[real], reference[real], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_full_map_is_the_concatenated_rows_bitwise(kind):
    layer = make(kind, True)
    x = inputs(length=12)
    mask = padded_mask()
    rows = torch.cat([r for _, r in layer.attention_weight_rows(x, mask, block_size=12)], 2)
    expected = rows * mask[:, None, :, None]
    assert torch.equal(layer.attention_weights(x, mask), expected)


def test_bad_block_size_is_named():
    with pytest.raises(ValueError, match="block_size must be >= 1, got 0"):
        list(make("exact", False).attention_weight_rows(inputs(), block_size=0))


@pytest.mark.parametrize("kind", ["exact", "identity"])
def test_performer_features_reject_non_performer_kinds(kind):
    with pytest.raises(ValueError, match=f"needs a Performer attention.*attention.kind='{kind}'"):
        make(kind, False).performer_features(inputs())
