"""Hand-written backwards (fused FAVOR+ features, causal reverse scan) against autograd of
the reference formulas, in float64."""

import math

import pytest
import torch

from protperf.attention import causal
from protperf.attention.causal import causal_linear_attention_unnormalized
from protperf.attention.favor import favor_attention
from protperf.attention.features import (
    causal_key_stabilizer,
    draw_projection,
    global_key_stabilizer,
    positive_features,
    relu_features,
    softmax_feature_logits,
)
from protperf.attention.fused import relu_features_fused, softmax_features
from tests.attention.test_favor import random_features  # q', k', v, causal s


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
    got, got_scale = softmax_features(x, w, stabilizer, subtract_half_sq, mask)
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
    with pytest.raises(ValueError, match="stabilizer must be one of"):
        softmax_features(x, w, "rows")
    with pytest.raises(ValueError, match="fixed random projection"):
        softmax_features(x, w.clone().requires_grad_(), "row")


def quadratic_unnormalized(q, k, v, s):
    """O(L^2) autograd reference: sum_{j<=i} q_i.k_j exp(s_j - s_i) v_j."""
    length = q.shape[2]
    future = ~torch.ones(length, length, dtype=torch.bool).tril()
    rescale = (s.unsqueeze(-2) - s.unsqueeze(-1)).masked_fill(future, -math.inf).exp()
    return ((q @ k.transpose(-2, -1)) * rescale) @ v


@pytest.mark.parametrize("stabilized", [True, False])  # False: s = None (ReLU features)
@pytest.mark.parametrize("group_bytes", [None, 1])  # 1: one head per state group
@pytest.mark.parametrize("chunk_size", [1, 3, 4, 13, 64])
def test_causal_scan_matches_the_quadratic_reference_and_its_gradients(
    chunk_size, group_bytes, stabilized, monkeypatch
):
    if group_bytes is not None:
        monkeypatch.setattr(causal, "STATE_GROUP_BYTES", group_bytes)
    q, k, v, s = random_features(13, m=5, dv=4)  # 13 = 3 chunks of 4 + 1, or 4 of 3 + 1
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    ref_leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = causal_linear_attention_unnormalized(*leaves, s if stabilized else None, chunk_size)
    expected = quadratic_unnormalized(*ref_leaves, s if stabilized else torch.zeros_like(s))
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)
    upstream = torch.randn(out.shape, dtype=torch.float64,
                           generator=torch.Generator().manual_seed(3))
    (out * upstream).sum().backward()
    (expected * upstream).sum().backward()
    for got, want in zip(leaves, ref_leaves, strict=True):
        torch.testing.assert_close(got.grad, want.grad, atol=1e-10, rtol=1e-10)


def test_causal_scan_stays_finite_across_huge_stabilizer_jumps():
    """Jumps of 1000 inside a chunk: exp(s_j - s_i) of future pairs would overflow to inf
    (and inf * 0 = NaN) without the clamp; past pairs underflow to ~0 as in the reference."""
    q, k, v, _ = random_features(8, m=5, dv=4)
    s = torch.tensor([0.0, 0.0, 1000.0, 1000.0, 1000.5, 2000.0, 2000.0, 2001.0], dtype=q.dtype)
    s = s.expand(2, 3, 8)
    leaves = [t.float().requires_grad_() for t in (q, k, v)]
    out = causal_linear_attention_unnormalized(*leaves, s.float(), 4)
    out.sum().backward()
    assert all(torch.isfinite(t).all() for t in (out, *(leaf.grad for leaf in leaves)))
    expected = quadratic_unnormalized(q, k, v, s)  # float64: exp(-1000) = 0 exactly
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)


def test_causal_scan_gradcheck():
    q, k, v, s = random_features(10, m=3, dv=2)
    q, k, v = (t[:1, :2].clone().requires_grad_() for t in (q, k, v))
    assert torch.autograd.gradcheck(
        lambda a, b, c: causal_linear_attention_unnormalized(a, b, c, s[:1, :2], 3), (q, k, v)
    )


def test_causal_scan_refuses_a_bad_chunk_size():
    q, k, v, s = random_features(4, m=5, dv=4)
    with pytest.raises(ValueError, match="chunk_size must be > 0"):
        causal_linear_attention_unnormalized(q, k, v, s, 0)


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
