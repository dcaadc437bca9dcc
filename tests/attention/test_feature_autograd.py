"""Hand-written backwards of the fused FAVOR+ features against autograd of the reference
formulas, in float64."""


import pytest
import torch

from protperf.attention.ops.feature_autograd import relu_features_fused, softmax_features
from protperf.attention.ops.feature_maps import (
    causal_key_stabilizer,
    draw_projection,
    global_key_stabilizer,
    positive_features,
    relu_features,
    softmax_feature_logits,
    stabilizer_shift,
)
from tests.attention.helpers import favor_attention


def heads(length=11, d=4, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(2, 3, length, d, generator=gen, dtype=torch.float64)


def projection(m=8, d=4, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return draw_projection("orthogonal", m, d, generator=gen).double()


def key_mask(length=11):
    mask = torch.ones(2, length, dtype=torch.bool)
    mask[1, :2] = False  # leading padding
    mask[1, -3:] = False  # trailing padding
    return mask


def reference_features(x, w, stabilizer, subtract_half_sq, mask):
    """Autograd reference: exp(Wx - |x|^2/2 - c) / sqrt(m), c from features.py."""
    logits = softmax_feature_logits(x, w)
    if not subtract_half_sq:
        logits = logits + 0.5 * (x * x).sum(-1, keepdim=True)
    log_scale = None
    if stabilizer == "row":
        shift = logits.detach().amax(-1, keepdim=True)
    elif stabilizer == "global":
        shift = global_key_stabilizer(logits, mask)
    else:
        log_scale = causal_key_stabilizer(logits, mask)
        shift = log_scale.unsqueeze(-1)
    features = positive_features(logits, shift)
    if mask is not None:
        features = features * mask[:, None, :, None]
    return features, log_scale


CASES = [("row", False, False), ("row", True, False), ("global", True, False),
         ("global", True, True), ("causal", True, False), ("causal", True, True)]


@pytest.mark.parametrize("stabilizer,subtract_half_sq,masked", CASES)
def test_softmax_features_match_the_reference_values_and_gradients(
    stabilizer, subtract_half_sq, masked
):
    w, mask = projection(), key_mask() if masked else None
    x_ref = heads(scale=2.0).requires_grad_()
    x = x_ref.detach().clone().requires_grad_()
    expected, expected_scale = reference_features(x_ref, w, stabilizer, subtract_half_sq, mask)
    shift_of = {"row": lambda row_max: (row_max, None),
                "global": stabilizer_shift(False, mask),
                "causal": stabilizer_shift(True, mask)}[stabilizer]
    got, got_scale = softmax_features(x, w, shift_of, subtract_half_sq, mask)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-12)
    if stabilizer == "causal":
        torch.testing.assert_close(got_scale, expected_scale, atol=0, rtol=0)
    else:
        assert got_scale is None
    upstream = torch.randn(got.shape, dtype=torch.float64,
                           generator=torch.Generator().manual_seed(2))
    (expected * upstream).sum().backward()
    (got * upstream).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-10, rtol=1e-10)
    if masked:
        assert (got[1, :, :2] == 0).all() and (got[1, :, -3:] == 0).all()
        assert (x.grad[1, :, :2] == 0).all() and (x.grad[1, :, -3:] == 0).all()


@pytest.mark.parametrize("causal", [False, True])
def test_masked_favor_attention_gradcheck(causal):
    # The features alone are not gradcheck-able: their stabilizer is a detached function of
    # x (it cancels only in the attention ratio), so check the whole attention, with padding.
    w, mask = projection(), key_mask(7)
    q, k, v = (heads(length=7, seed=s).requires_grad_() for s in range(3))
    assert torch.autograd.gradcheck(
        lambda a, b, c: favor_attention(a, b, c, w, "softmax", causal, mask, chunk_size=3),
        (q, k, v), fast_mode=True,
    )


def test_softmax_features_refuse_bad_arguments():
    w, x = projection(), heads()
    with pytest.raises(ValueError, match="fixed random projection"):
        softmax_features(x, w.clone().requires_grad_(), "row")


@pytest.mark.parametrize("eps", [1e-3, 0.0])  # 0: the backward's threshold is 0 itself
def test_relu_features_match_the_reference_values_and_gradients(eps):
    w = projection()
    x_ref = heads().requires_grad_()
    x = x_ref.detach().clone().requires_grad_()
    expected, got = relu_features(x_ref, w, eps), relu_features_fused(x, w, eps)
    torch.testing.assert_close(got, expected, atol=0, rtol=0)
    upstream = torch.randn(got.shape, dtype=torch.float64,
                           generator=torch.Generator().manual_seed(4))
    (expected * upstream).sum().backward()
    (got * upstream).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-12, rtol=1e-12)
    assert torch.autograd.gradcheck(lambda t: relu_features_fused(t, w, eps), (x,))
    with pytest.raises(ValueError, match="fixed random projection"):
        relu_features_fused(x, w.clone().requires_grad_(), 1e-3)


def test_relu_features_zero_padding_keys_and_their_gradients():
    w, mask = projection(), key_mask()
    x_ref = heads().requires_grad_()
    x = x_ref.detach().clone().requires_grad_()
    expected = relu_features(x_ref, w, 1e-3) * mask[:, None, :, None]
    got = relu_features_fused(x, w, 1e-3, mask)
    torch.testing.assert_close(got, expected, atol=0, rtol=0)
    assert (got[1, :, :2] == 0).all() and (got[1, :, -3:] == 0).all()
    upstream = torch.randn(got.shape, dtype=torch.float64,
                           generator=torch.Generator().manual_seed(5))
    (expected * upstream).sum().backward()
    (got * upstream).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-12, rtol=1e-12)
    assert (x.grad[1, :, :2] == 0).all()
