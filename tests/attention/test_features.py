"""Random matrices and softmax/ReLU feature maps (fixed seeds, stated tolerances)."""

import math

import pytest
import torch

from protperf.attention.ops.feature_maps import (
    draw_projection,
    favorpp_parameter,
    iid_gaussian_matrix,
    orthogonal_gaussian_matrix,
    relu_features,
    simplex_gaussian_matrix,
    softmax_feature_logits,
)


def kernel_estimates(feature_type, x, y, m, draws, seed=0, favorpp_a=None):
    """(draws, N) estimates phi(x_n).phi(y_n) of exp(x_n.y_n), unstabilized, float64.

    One call draws m * draws rows: blocks are independent, so consecutive groups of m rows
    (m a multiple of d) are independent draws of an m-feature projection.
    """
    gen = torch.Generator().manual_seed(seed)
    w = draw_projection(feature_type, m * draws, x.shape[-1], generator=gen).double()
    fx = torch.exp(softmax_feature_logits(x, w, favorpp_a)).reshape(-1, draws, m)
    fy = torch.exp(softmax_feature_logits(y, w, favorpp_a)).reshape(-1, draws, m)
    return (fx * fy).mean(-1).T  # (draws, N)


@pytest.fixture
def pairs():
    gen = torch.Generator().manual_seed(1)
    x = 0.3 * torch.randn(1, 1, 6, 8, generator=gen, dtype=torch.float64)
    y = 0.3 * torch.randn(1, 1, 6, 8, generator=gen, dtype=torch.float64)
    return x, y


def test_orthogonal_blocks_are_orthogonal_with_chi_or_sqrt_d_norms():
    gen = torch.Generator().manual_seed(0)
    w = orthogonal_gaussian_matrix(20, 8, "chi", gen).double()
    directions = w / w.norm(dim=1, keepdim=True)
    for block in (directions[:8], directions[8:16], directions[16:]):
        gram = block @ block.T
        torch.testing.assert_close(gram, torch.eye(len(block), dtype=gram.dtype), atol=1e-6, rtol=0)
    assert w.norm(dim=1).std() > 0.1  # chi norms vary
    w_fixed = orthogonal_gaussian_matrix(20, 8, "sqrt_d", gen)
    torch.testing.assert_close(w_fixed.norm(dim=1), torch.full((20,), math.sqrt(8)))


def test_simplex_directions_have_cosine_minus_one_over_d_minus_one():
    gen = torch.Generator().manual_seed(0)
    w = simplex_gaussian_matrix(8, 8, "sqrt_d", gen).double()
    cos = (w @ w.T) / 8.0
    off_diagonal = cos[~torch.eye(8, dtype=torch.bool)]
    torch.testing.assert_close(
        off_diagonal, torch.full_like(off_diagonal, -1 / 7), atol=1e-6, rtol=0
    )


def test_same_generator_seed_gives_same_matrix():
    a = draw_projection("orthogonal", 32, 8, generator=torch.Generator().manual_seed(5))
    b = draw_projection("orthogonal", 32, 8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("feature_type", ["iid", "orthogonal", "simplex", "favorpp"])
def test_softmax_estimator_is_unbiased(pairs, feature_type):
    x, y = pairs
    a = favorpp_parameter(x, y) if feature_type == "favorpp" else None
    if a is not None:
        assert (a < 0).all()  # nonzero data -> a genuinely different estimator than FAVOR+
    est = kernel_estimates(feature_type, x, y, m=16, draws=20000, favorpp_a=a)
    truth = torch.exp((x * y).sum(-1)).flatten()
    mean, sem = est.mean(0), est.std(0) / math.sqrt(est.shape[0])
    # every pair's Monte-Carlo mean within 4.5 standard errors (and 3% relative)
    assert ((mean - truth).abs() < 4.5 * sem).all(), (mean, truth, sem)
    assert ((mean - truth).abs() / truth < 0.03).all()


def test_orthogonal_has_lower_mse_than_iid_and_simplex_lowest():
    # d = m = 32, |x| ~ 0.85: moderate norms, where the positive estimator's MSE is well
    # estimated by 4000 draws (for large norms it is heavy-tailed)
    gen = torch.Generator().manual_seed(1)
    x = 0.15 * torch.randn(1, 1, 6, 32, generator=gen, dtype=torch.float64)
    y = 0.15 * torch.randn(1, 1, 6, 32, generator=gen, dtype=torch.float64)
    truth = torch.exp((x * y).sum(-1)).flatten()
    mse = {
        kind: ((kernel_estimates(kind, x, y, m=32, draws=4000, seed=3) - truth) ** 2).mean().item()
        for kind in ("iid", "orthogonal", "simplex")
    }
    assert mse["orthogonal"] < 0.85 * mse["iid"], mse
    assert mse["simplex"] < mse["orthogonal"], mse


def test_favorpp_has_lower_mse_than_favor_plus_for_larger_inputs():
    gen = torch.Generator().manual_seed(2)
    x = 0.25 * torch.randn(1, 1, 6, 32, generator=gen, dtype=torch.float64)
    y = 0.25 * torch.randn(1, 1, 6, 32, generator=gen, dtype=torch.float64)
    truth = torch.exp((x * y).sum(-1)).flatten()
    a = favorpp_parameter(x, y)
    plus = ((kernel_estimates("orthogonal", x, y, 32, 4000, seed=4) - truth) ** 2).mean()
    plusplus = (kernel_estimates("favorpp", x, y, 32, 4000, seed=4, favorpp_a=a) - truth) ** 2
    assert plusplus.mean() < 0.8 * plus, (plusplus.mean(), plus)


def test_favorpp_parameter_is_zero_for_zero_data_and_ignores_masked_tokens():
    zeros = torch.zeros(2, 3, 5, 4)
    assert torch.equal(favorpp_parameter(zeros, zeros), torch.zeros(2, 3))
    x = torch.randn(1, 2, 5, 4)
    mask = torch.tensor([[True, True, True, False, False]])
    garbage = torch.cat([x[:, :, :3], 100 * torch.randn(1, 2, 2, 4)], dim=2)
    torch.testing.assert_close(
        favorpp_parameter(x[:, :, :3], x[:, :, :3]), favorpp_parameter(garbage, garbage, mask)
    )


def test_iid_matrix_is_standard_gaussian():
    w = iid_gaussian_matrix(512, 64, torch.Generator().manual_seed(0))
    assert abs(w.mean().item()) < 0.01 and abs(w.std().item() - 1) < 0.01


def test_relu_features_are_positive_and_no_projection_keeps_dim():
    x = torch.randn(2, 3, 5, 8)
    w = torch.randn(16, 8)
    f = relu_features(x, w, eps=1e-3)
    assert f.shape == (2, 3, 5, 16) and (f >= 1e-3).all()
    torch.testing.assert_close(relu_features(x, None, 0.0), torch.relu(x))
