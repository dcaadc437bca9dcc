"""Bidirectional and chunked causal linear attention against O(L^2) references (float64)."""

import pytest
import torch

from protperf.attention.ops.feature_maps import draw_projection, performer_feature_maps
from tests.attention.helpers import (
    bidirectional_linear_attention,
    causal_linear_attention,
    favor_attention,
    random_features,
)
from tests.attention.reference import linear_attention_reference


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 37])
def test_causal_chunked_equals_quadratic_reference(chunk_size):
    q, k, v, s = random_features(length=37)  # 37 is not a multiple of 7 (or 64)
    for log_scale in (None, s):
        reference = linear_attention_reference(q, k, v, causal=True, key_log_scale=log_scale)
        out = causal_linear_attention(q, k, v, chunk_size, log_scale)
        torch.testing.assert_close(out, reference, atol=1e-8, rtol=0)


def test_bidirectional_equals_quadratic_reference():
    q, k, v, _ = random_features(length=29)
    reference = linear_attention_reference(q, k, v, causal=False)
    torch.testing.assert_close(
        bidirectional_linear_attention(q, k, v), reference, atol=1e-10, rtol=0
    )


def test_reference_is_a_masked_weighted_average():
    # independent check of the reference itself: row 0 in causal mode is v_0
    q, k, v, s = random_features(length=5)
    out = linear_attention_reference(q, k, v, causal=True, key_log_scale=s)
    torch.testing.assert_close(out[..., 0, :], v[..., 0, :])


def test_gradcheck_linear_attention_float64():
    q, k, v, s = random_features(length=9, m=4, dv=3)
    q, k, v = (t[:1, :1].clone().requires_grad_() for t in (q, k, v))
    s = s[:1, :1]
    assert torch.autograd.gradcheck(
        lambda a, b, c: causal_linear_attention(a, b, c, 4, s), (q, k, v), fast_mode=True
    )
    assert torch.autograd.gradcheck(bidirectional_linear_attention, (q, k, v), fast_mode=True)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel", ["softmax", "relu"])
def test_gradcheck_full_favor_attention_float64(causal, kernel):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(1, 2, 6, 4, generator=gen, dtype=torch.float64, requires_grad=True)
        for _ in range(3)
    )
    w = draw_projection("orthogonal", 8, 4, generator=gen).double()
    assert torch.autograd.gradcheck(
        lambda a, b, c: favor_attention(a, b, c, w, kernel, causal, chunk_size=4),
        (q, k, v),
        fast_mode=True,
    )


def leaky_causal_favor(q, k, v, w):
    """performer-pytorch-style: one key max over the WHOLE sequence, plus eps=1e-4."""
    q, k = q * q.shape[-1] ** -0.25, k * k.shape[-1] ** -0.25
    ql = q @ w.T - 0.5 * (q * q).sum(-1, keepdim=True)
    kl = k @ w.T - 0.5 * (k * k).sum(-1, keepdim=True)
    qp = torch.exp(ql - ql.amax(-1, keepdim=True)) + 1e-4
    kp = torch.exp(kl - kl.amax(dim=(-2, -1), keepdim=True)) + 1e-4
    return linear_attention_reference(qp, kp, v, causal=True)


def future_changes_past(attention, w, length=40, changed=30):
    """Max change of outputs at positions < changed when token `changed` changes.

    The new key sits on a random-feature direction (after the d^-1/4 scaling it equals w_0),
    which maximizes its feature logit |w_0|^2/2 ~ d/2 far above the other keys'.
    """
    gen = torch.Generator().manual_seed(0)
    d = w.shape[1]
    q, k, v = (torch.randn(1, 2, length, d, generator=gen) for _ in range(3))
    k2, v2 = k.clone(), v.clone()
    k2[:, :, changed] = w[0] * d**0.25
    v2[:, :, changed] = 1e3
    before, after = attention(q, k, v), attention(q, k2, v2)
    return (before[:, :, :changed] - after[:, :, :changed]).abs().max().item()


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
@pytest.mark.parametrize("kernel", ["softmax", "relu"])
def test_future_tokens_never_change_past_outputs(chunk_size, kernel):
    w = draw_projection("orthogonal", 64, 64, generator=torch.Generator().manual_seed(1))
    change = future_changes_past(
        lambda q, k, v: favor_attention(q, k, v, w, kernel, True, chunk_size=chunk_size), w
    )
    assert change == 0.0  # bitwise: no future value enters any past computation


def test_the_future_check_catches_a_leaky_stabilizer():
    w = draw_projection("orthogonal", 64, 64, generator=torch.Generator().manual_seed(1))
    assert future_changes_past(lambda q, k, v: leaky_causal_favor(q, k, v, w), w) > 1e-2


def test_padding_keys_get_zero_features_and_stabilizers_ignore_them():
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 2, 6, 4, generator=gen), torch.randn(2, 2, 6, 4, generator=gen)
    k[1, :, 4:] = 50.0  # huge padding keys must not affect the stabilizer
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    w = draw_projection("orthogonal", 8, 4, generator=gen)
    for causal in (False, True):
        qp, kp, _ = performer_feature_maps(q, k, w, "softmax", mask, causal_keys=causal)
        assert (kp[1, :, 4:] == 0).all()
        qp_short, kp_short, _ = performer_feature_maps(
            q[1:, :, :4], k[1:, :, :4], w, "softmax", causal_keys=causal
        )
        torch.testing.assert_close(kp[1:, :, :4], kp_short)
