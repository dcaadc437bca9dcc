"""Kernel choice (the one branch point), the backend checks at
construction, and the bf16 precision policy."""

import pytest
import torch

from protperf.attention import AttentionConfig, MultiHeadAttention
from protperf.attention import backends as backends_module
from protperf.attention.backends import attention_mode, check_backend
from protperf.attention.ops import causal_fla
from protperf.attention.ops.feature_maps import draw_projection
from tests.attention.helpers import favor_attention
from tests.attention.reference import linear_attention_reference, softmax_attention_matrix


def mode(kind, causal=True, backend="auto", dtype=torch.float32, segments=False, **fields):
    """The name of the kernel a layer of this config runs on CPU heads."""
    q = torch.zeros(1, 2, 8, 4, dtype=dtype)
    ids = torch.zeros(1, 8, dtype=torch.long) if segments else None
    config = AttentionConfig(kind=kind, backend=backend, **fields)
    return attention_mode(config, causal, q, ids).__name__


def test_modes_on_cpu():
    assert mode("exact") == "exact_causal" and mode("exact", causal=False) == "exact"
    assert mode("identity") == "identity"
    for kind in ("favor_softmax", "favor_relu"):
        assert mode(kind, causal=False) == "favor_linear"
        assert mode(kind, causal=False, segments=True) == "favor_bidirectional"
        for backend in ("auto", "torch"):  # auto is torch on CPU tensors
            assert mode(kind, backend=backend) == "favor_chunked"
            assert mode(kind, backend=backend, dtype=torch.float64) == "favor_chunked"
            assert mode(kind, backend=backend, segments=True) == "favor_scan"
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert mode(kind, backend=backend) == "favor_scan"
                assert mode(kind, causal=False, backend=backend) == "favor_bidirectional"
                assert mode(kind, backend=backend, dtype=torch.float64) == "favor_chunked"
            with torch.autocast("cpu", dtype=torch.float16):  # float16: Performer in float32
                assert mode(kind, backend=backend) == "favor_chunked"
    # estimators the recomputing kernels do not cover keep their features
    assert mode("favor_softmax", causal=False, feature_type="favorpp") == "favor_bidirectional"
    assert mode("favor_relu", no_projection=True) == "favor_scan"


def test_auto_mode_on_cuda_tensors(monkeypatch):
    """auto: fla for CUDA tensors when fla imports, except softmax where fla's gated
    backward is broken; torch's scan otherwise (meta tensors stand in for CUDA ones)."""
    q = torch.empty(1, 2, 8, 4, device="meta")
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    config = {kind: AttentionConfig(kind=kind) for kind in ("favor_softmax", "favor_relu")}

    def names(*configs):
        return {attention_mode(c, True, q, None).__name__ for c in configs}

    monkeypatch.setattr(backends_module, "fla_available", lambda: False)
    assert names(*config.values()) == {"favor_scan"}
    assert attention_mode(config["favor_relu"], False, q, None).__name__ == "favor_bidirectional"
    monkeypatch.setattr(backends_module, "fla_available", lambda: True)
    monkeypatch.setattr(backends_module, "gated_backward_problem", lambda device=None: None)
    assert names(*config.values()) == {"favor_fla"}
    monkeypatch.setattr(backends_module, "gated_backward_problem", lambda device=None: "bug")
    assert names(config["favor_softmax"]) == {"favor_scan"}
    assert names(config["favor_relu"]) == {"favor_fla"}  # no gate


def test_fla_backend_without_the_package_fails_at_construction(monkeypatch):
    monkeypatch.setattr(backends_module, "fla_available", lambda: False)
    cfg = AttentionConfig(kind="favor_softmax", num_features=8, backend="fla")
    with pytest.raises(ValueError, match=r"model\.attention\.backend='fla' needs "
                                         r"flash-linear-attention .*protperf\[gpu\]"):
        MultiHeadAttention(16, 2, cfg, causal=True)
    MultiHeadAttention(16, 2, cfg, causal=False)  # bidirectional: no backend choice


def test_fla_backend_without_cuda_fails_at_construction(monkeypatch):
    monkeypatch.setattr(backends_module, "fla_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"model\.attention\.backend='fla' needs a CUDA GPU"):
        check_backend(AttentionConfig(kind="favor_relu", backend="fla"), causal=True)


def hopper(monkeypatch, triton, capability=(9, 0), tilelang=False):
    """A CUDA machine with fla, this GPU capability and Triton version."""
    monkeypatch.setattr(backends_module, "fla_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(causal_fla, "triton_version", lambda: triton)
    monkeypatch.setattr(causal_fla, "HAS_TILELANG", tilelang)


def test_fla_softmax_on_hopper_with_a_broken_triton_fails_at_construction(monkeypatch):
    hopper(monkeypatch, "3.6.0")
    cfg = AttentionConfig(kind="favor_softmax", num_features=8, backend="fla")
    with pytest.raises(ValueError, match=r"backend='fla' with attention\.kind='favor_softmax': "
                                         r"fla's gated backward is wrong on Hopper GPUs with "
                                         r"Triton 3\.6\.0 .*upgrade Triton to >= 3\.7\.1"):
        MultiHeadAttention(16, 2, cfg, causal=True)
    # ReLU attention has no gate; softmax is fine elsewhere
    MultiHeadAttention(16, 2, AttentionConfig(kind="favor_relu", backend="fla"), causal=True)
    for triton, capability, tilelang in (("3.7.1", (9, 0), False), ("3.3.1", (9, 0), False),
                                         ("3.6.0+git9a2b", (8, 0), False),
                                         ("3.6.0", (9, 0), True), (None, (9, 0), False)):
        hopper(monkeypatch, triton, capability, tilelang)
        MultiHeadAttention(16, 2, cfg, causal=True)
    hopper(monkeypatch, "3.4.0+git1234")
    assert "Triton 3.4.0+git1234" in causal_fla.gated_backward_problem()


def test_fla_mode_refuses_cpu_tensors():
    with pytest.raises(ValueError, match=r"backend='fla' runs on CUDA tensors only, got a cpu"):
        mode("favor_relu", backend="fla")


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match=r"attention\.backend='triton' is not one of auto"):
        AttentionConfig(kind="favor_relu", backend="triton").validate()


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
