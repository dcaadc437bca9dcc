"""Backend choice (auto | torch | fla) and its error paths; the bf16 precision policy."""

import pytest
import torch

from protperf.attention import AttentionConfig, MultiHeadAttention
from protperf.attention import backends as backends_module
from protperf.attention.backends import (
    AutoCausalKernel,
    FlaCausalKernel,
    TorchCausalKernel,
    causal_kernel,
    resolved_backend,
)
from protperf.attention.ops.features import draw_projection
from protperf.attention.reference import linear_attention_reference, softmax_attention_matrix
from tests.attention.helpers import favor_attention, random_features


def test_auto_picks_torch_on_cpu():
    assert resolved_backend("auto", "cpu") == "torch"
    kernel = causal_kernel("auto", 16)
    assert isinstance(kernel, AutoCausalKernel) and isinstance(kernel.torch_kernel,
                                                               TorchCausalKernel)
    q, k, v, s = random_features(20, m=4, dv=3)
    expected = TorchCausalKernel(16)(q, k, v, s)
    torch.testing.assert_close(kernel(q, k, v, s), expected, atol=0, rtol=0)


def test_layer_builds_its_kernel_once_per_backend():
    cfg = AttentionConfig(kind="favor_softmax", num_features=8, backend="torch")
    layer = MultiHeadAttention(16, 2, cfg, causal=True)
    assert isinstance(layer.performer.causal_kernel, TorchCausalKernel)
    bidirectional = MultiHeadAttention(16, 2, cfg, causal=False)
    assert bidirectional.performer.causal_kernel is None


def test_fla_backend_without_the_package_fails_at_construction(monkeypatch):
    monkeypatch.setattr(backends_module, "fla_available", lambda: False)
    cfg = AttentionConfig(kind="favor_softmax", num_features=8, backend="fla")
    with pytest.raises(ValueError, match=r"model\.attention\.backend='fla' needs "
                                         r"flash-linear-attention .*protperf\[gpu\]"):
        MultiHeadAttention(16, 2, cfg, causal=True)


def test_fla_backend_without_cuda_fails_at_construction(monkeypatch):
    monkeypatch.setattr(backends_module, "fla_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"model\.attention\.backend='fla' needs a CUDA GPU"):
        causal_kernel("fla", 16)


def test_fla_kernel_refuses_cpu_tensors():
    q, k, v, s = random_features(8, m=4, dv=3)
    with pytest.raises(ValueError, match=r"backend='fla' runs on CUDA tensors only, got a cpu"):
        FlaCausalKernel()(q, k, v, s)


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match=r"attention\.backend='triton' is not one of auto"):
        AttentionConfig(kind="favor_relu", backend="triton").validate()
    with pytest.raises(ValueError, match=r"model\.attention\.backend='x' is not one of"):
        causal_kernel("x", 16)


def heads(length, d=16, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(1, 2, length, d, generator=gen, dtype=torch.float64)
            for _ in range(3)]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel", ["softmax", "relu"])
def test_bf16_autocast_error_against_float64_is_bf16_sized(kernel, causal):
    """bf16 autocast: features/exponents fp32, matmuls bf16: error ~1e-2 relative at most."""
    q, k, v = heads(300)
    w = draw_projection("orthogonal", 32, 16, generator=torch.Generator().manual_seed(1))
    reference = favor_attention(q, k, v, w.double(), kernel, causal, chunk_size=16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = favor_attention(*(t.float() for t in (q, k, v)), w, kernel, causal,
                              chunk_size=16)
    assert out.dtype == torch.float32
    error = ((out.double() - reference).norm() / reference.norm()).item()
    assert error < 2e-2


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel", ["softmax", "relu"])
def test_bf16_autocast_is_finite_for_inputs_of_size_100(kernel, causal):
    q, k, v = (t.float().requires_grad_() for t in heads(70, scale=100.0))
    w = draw_projection("orthogonal", 32, 16, generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = favor_attention(q, k, v, w, kernel, causal, chunk_size=16)
    out.sum().backward()
    assert all(torch.isfinite(t).all() for t in (out, q.grad, k.grad, v.grad))


def test_float64_layer_matches_the_quadratic_references():
    # the whole layer path in float64 against the O(L^2) formulas
    q, k, v = heads(40)
    w = draw_projection("orthogonal", 32, 16, generator=torch.Generator().manual_seed(1))
    out = favor_attention(q, k, v, w.double(), "relu", True, chunk_size=16)
    scale = 16**-0.25
    q_prime = torch.relu((q * scale) @ w.double().T) + 1e-3
    k_prime = torch.relu((k * scale) @ w.double().T) + 1e-3
    expected = linear_attention_reference(q_prime, k_prime, v, causal=True)
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)
    assert softmax_attention_matrix(q, k, True).shape == (1, 2, 40, 40)
