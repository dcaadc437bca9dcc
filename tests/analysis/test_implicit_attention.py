"""The attention a layer applies, read from the layer: Performer features and L x L maps."""

import pytest
import torch

from protperf.analysis.implicit_attention import attention_matrix, feature_maps
from tests.attention.test_layer import DIM, HEADS, PERFORMER_KINDS, inputs, make


@pytest.mark.parametrize("kind", PERFORMER_KINDS)
@pytest.mark.parametrize("causal", [False, True])
def test_attention_matrix_matches_forward_and_feature_maps(kind, causal):
    layer = make(kind, causal).double()
    x = inputs(length=12, dtype=torch.float64)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 9:] = False
    attn = attention_matrix(layer, x, mask)
    _, _, v = layer.project(x)
    via_matrix = layer.out_proj((attn @ v).transpose(1, 2).reshape(2, 12, DIM))
    torch.testing.assert_close(layer(x, mask), via_matrix, atol=1e-10, rtol=0)
    q_prime, k_prime = feature_maps(layer, x, mask)
    assert q_prime.shape == k_prime.shape == (2, HEADS, 12, 64)
    assert (k_prime[1, :, 9:] == 0).all()
    weights = q_prime @ k_prime.transpose(-2, -1)
    if causal:
        weights = weights.tril()
    expected = weights / weights.sum(-1, keepdim=True)
    torch.testing.assert_close(attn[0], expected[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(attn[1, :, :9], expected[1, :, :9], atol=1e-12, rtol=0)
    assert (attn[1, :, 9:] == 0).all()  # padding query rows


@pytest.mark.parametrize("causal", [False, True])
def test_exact_attention_matrix_is_the_softmax_forward(causal):
    layer = make("exact", causal).double()
    x = inputs(length=10, dtype=torch.float64)
    attn = attention_matrix(layer, x)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, HEADS, 10, dtype=torch.float64))
    if causal:
        assert (attn.triu(1) == 0).all()
    _, _, v = layer.project(x)
    via_matrix = layer.out_proj((attn @ v).transpose(1, 2).reshape(2, 10, DIM))
    torch.testing.assert_close(layer(x), via_matrix, atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", ["exact", "identity"])
def test_feature_maps_rejects_non_performer_kinds(kind):
    with pytest.raises(ValueError, match=f"needs a Performer attention.*attention.kind='{kind}'"):
        feature_maps(make(kind, False), inputs())
