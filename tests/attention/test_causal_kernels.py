"""Causal kernels of kept features (loop-free scan, the fla mapping) against O(L^2) references:
values and gradients in float64, padding, segments, L not a multiple of the chunk."""

import importlib.metadata
import importlib.util

import pytest
import torch

from protperf.attention.ops import causal_fla
from protperf.attention.ops.causal_fla import (
    gated_causal_attention_unnormalized,
    gates_from_log_scale,
)
from protperf.attention.ops.causal_scan import causal_scan_attention_unnormalized
from protperf.attention.ops.feature_maps import draw_projection
from protperf.attention.performer import favor_chunked, favor_fla
from tests.attention.helpers import performer_config, random_features
from tests.attention.reference import linear_attention_weights, simple_gla_reference


def scan(q, k, v, s, chunk_size, segment_ids=None):
    return causal_scan_attention_unnormalized(q, k, v, s, chunk_size, segment_ids)


def fla_mapping(q, k, v, s, chunk_size, segment_ids=None):
    """The fla adapter with protperf's quadratic simple-GLA in place of fla's kernel."""
    return gated_causal_attention_unnormalized(q, k, v, s, segment_ids,
                                               kernel=simple_gla_reference)


KERNELS = {"scan": scan, "fla_mapping": fla_mapping}
SEGMENT_KERNELS = {"scan": scan, "fla_mapping": fla_mapping}


def quadratic_unnormalized(q, k, v, s, segment_ids=None):
    """O(L^2) autograd reference: sum_{j<=i, same segment} q_i.k_j exp(s_j - s_i) v_j."""
    return linear_attention_weights(q, k, True, s, segment_ids) @ v


def segments(length=13):
    """Two rows: three proteins (one of length 1) and a single protein."""
    return torch.tensor([[0] * 5 + [1] + [2] * (length - 6), [7] * length])


def check_values_and_gradients(kernel, chunk_size, s, segment_ids=None, length=13):
    q, k, v, _ = random_features(length, m=5, dv=4)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    ref_leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = kernel(*leaves, s, chunk_size, segment_ids)
    expected = quadratic_unnormalized(*ref_leaves, s, segment_ids)
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)
    upstream = torch.randn(out.shape, dtype=torch.float64,
                           generator=torch.Generator().manual_seed(3))
    (out * upstream).sum().backward()
    (expected * upstream).sum().backward()
    for got, want in zip(leaves, ref_leaves, strict=True):
        torch.testing.assert_close(got.grad, want.grad, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("stabilized", [True, False])  # False: s = None (ReLU features)
@pytest.mark.parametrize("chunk_size", [1, 3, 4, 13, 64])
@pytest.mark.parametrize("name", list(KERNELS))
def test_causal_kernels_match_the_quadratic_reference_and_its_gradients(
    name, chunk_size, stabilized
):
    s = random_features(13, m=5, dv=4)[3] if stabilized else None  # 13 = 3 x 4 + 1
    check_values_and_gradients(KERNELS[name], chunk_size, s)


@pytest.mark.parametrize("stabilized", [True, False])
@pytest.mark.parametrize("chunk_size", [1, 4, 64])
@pytest.mark.parametrize("name", list(SEGMENT_KERNELS))
def test_segments_restart_the_causal_state(name, chunk_size, stabilized):
    s = random_features(13, m=5, dv=4)[3] if stabilized else None
    check_values_and_gradients(SEGMENT_KERNELS[name], chunk_size, s, segments())


@pytest.mark.parametrize("name", list(KERNELS))
def test_causal_kernels_stay_finite_across_huge_stabilizer_jumps(name):
    """Jumps of 1000 inside a chunk: exp(s_j - s_i) of future pairs would overflow to inf
    (and inf * 0 = NaN) without the clamp; past pairs underflow to ~0 as in the reference."""
    q, k, v, _ = random_features(8, m=5, dv=4)
    s = torch.tensor([0.0, 0.0, 1000.0, 1000.0, 1000.5, 2000.0, 2000.0, 2001.0], dtype=q.dtype)
    s = s.expand(2, 3, 8)
    leaves = [t.float().requires_grad_() for t in (q, k, v)]
    out = KERNELS[name](*leaves, s.float(), 4)
    out.sum().backward()
    assert all(torch.isfinite(t).all() for t in (out, *(leaf.grad for leaf in leaves)))
    expected = quadratic_unnormalized(q, k, v, s)  # float64: exp(-1000) = 0 exactly
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["scan"])
def test_causal_kernel_gradcheck(name):
    q, k, v, s = random_features(10, m=3, dv=2)
    q, k, v = (t[:1, :2].clone().requires_grad_() for t in (q, k, v))
    assert torch.autograd.gradcheck(
        lambda a, b, c: KERNELS[name](a, b, c, s[:1, :2], 3), (q, k, v)
    )


@pytest.mark.parametrize("name", ["scan"])
def test_causal_kernels_refuse_a_bad_chunk_size(name):
    q, k, v, s = random_features(4, m=5, dv=4)
    with pytest.raises(ValueError, match="chunk_size must be > 0"):
        KERNELS[name](q, k, v, s, 0)


def test_gates_are_the_negated_stabilizer_increments():
    s = torch.tensor([[[0.5, 0.5, 2.0, 3.5]]])
    gates = gates_from_log_scale(s)
    torch.testing.assert_close(gates, torch.tensor([[[0.0, 0.0, -1.5, -1.5]]]))
    # cumulative gates telescope: G_i - G_j = s_j - s_i
    cumulative = gates.cumsum(-1)
    torch.testing.assert_close(cumulative[..., 3] - cumulative[..., 1], s[..., 1] - s[..., 3])


def test_fla_mapping_pads_features_and_values_and_uses_scale_one():
    seen = {}

    def spy(q, k, v, g=None, scale=None, cu_seqlens=None, cu_seqlens_cpu=None):
        seen.update(q_shape=tuple(q.shape), v_shape=tuple(v.shape), scale=scale, g=g,
                    cu_seqlens=cu_seqlens, cu_seqlens_cpu=cu_seqlens_cpu)
        return simple_gla_reference(q, k, v, g, scale, cu_seqlens)

    q, k, v, s = random_features(13, m=5, dv=4)  # m = 5, e = 5 columns -> padded to 16
    gated_causal_attention_unnormalized(q, k, v, s, segments(), kernel=spy)
    assert seen["q_shape"] == (1, 2 * 13, 3, 16) and seen["v_shape"] == (1, 2 * 13, 3, 16)
    assert seen["scale"] == 1.0
    assert seen["cu_seqlens"].tolist() == [0, 5, 6, 13, 26]
    # fla sizes its grid from the host copy (no device-to-host sync of its own)
    assert seen["cu_seqlens_cpu"].device.type == "cpu"
    assert seen["cu_seqlens_cpu"].tolist() == [0, 5, 6, 13, 26]
    assert (seen["g"] <= 0).all()


def test_fla_path_divides_in_float32_under_bf16_autocast(monkeypatch):
    """fla returns its input dtype: protperf hands it float32, so the numerator and the
    normalizer are not rounded to bf16 before the division."""
    dtypes = set()

    def fla_like(q, k, v, g=None, scale=None, cu_seqlens=None, cu_seqlens_cpu=None):
        dtypes.update({q.dtype, k.dtype, v.dtype})
        return simple_gla_reference(q, k, v, g, scale, cu_seqlens)  # output in q's dtype

    monkeypatch.setattr(causal_fla, "_fla_chunk_simple_gla", fla_like)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 50, 16, generator=gen, dtype=torch.float64) for _ in range(3))
    w = draw_projection("orthogonal", 32, 16, generator=gen).double()
    # values are rounded to bf16 under autocast (the policy); nothing else is
    v_bf16 = v.bfloat16().double()
    config = performer_config("softmax", chunk_size=16)
    reference = favor_chunked(q, k, v_bf16, w, config)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = favor_fla(q.float(), k.float(), v.float(), w.float(), config)
    assert dtypes == {torch.float32} and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), reference, atol=1e-5, rtol=1e-5)


def fla_naive_module():
    """fla's naive.py when the fla-core distribution is installed (even without Triton)."""
    try:
        dist = importlib.metadata.distribution("fla-core")
    except importlib.metadata.PackageNotFoundError:
        return None
    if importlib.util.find_spec("einops") is None:
        return None
    path = dist.locate_file("fla/ops/simple_gla/naive.py")
    spec = importlib.util.spec_from_file_location("fla_simple_gla_naive", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("stabilized", [True, False])
def test_fla_mapping_matches_fla_naive_chunk_reference(stabilized):
    naive = fla_naive_module()
    if naive is None:
        pytest.skip("fla-core (and einops) not installed")

    def kernel(q, k, v, g=None, scale=None, cu_seqlens=None, cu_seqlens_cpu=None):
        assert cu_seqlens is None and cu_seqlens_cpu is None
        g = torch.zeros(q.shape[:3], dtype=torch.float32) if g is None else g
        return naive.naive_chunk_simple_gla(q, k, v, g, chunk_size=16, scale=scale)

    q, k, v, s = random_features(37, m=16, dv=7)  # 37: not a multiple of fla's chunk
    s = s if stabilized else None
    out = gated_causal_attention_unnormalized(q.float(), k.float(), v.float(),
                                              None if s is None else s.float(), kernel=kernel)
    expected = quadratic_unnormalized(q, k, v, s)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)
