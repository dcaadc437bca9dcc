"""GPU checks (marker ``gpu``, skipped without CUDA): every backend against float64.

Relative Frobenius error of the attention output against the same Performer (same random
features) computed in float64 with the quadratic-free float64 path. Tolerances: float32
inputs 2e-3 (fla's Triton kernels may use TF32 for float32 matmuls), bf16 autocast 3e-2
(bf16 feature/value storage, fp32 accumulation), exact SDPA the same against float64 SDPA.
"""

import pytest
import torch

from protperf.attention.backends import causal_kernel
from protperf.attention.ops.causal_fla import fla_available
from protperf.attention.ops.exact import exact_attention
from protperf.attention.ops.features import draw_projection
from protperf.attention.performer import PerformerAttention

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

TOLERANCE = {torch.float32: 2e-3, torch.bfloat16: 3e-2}
BACKENDS = ["torch", "fla"]


def heads(length, d=64, heads=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(1, heads, length, d, generator=gen, dtype=torch.float64).cuda()
            for _ in range(3)]


def relative_error(out, reference):
    return ((out.double() - reference).norm() / reference.norm()).item()


def run(performer, q, k, v, w, dtype):
    inputs = [t.float() for t in (q, k, v)]
    if dtype == torch.float32:
        return performer(*inputs, w.float())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        return performer(*inputs, w.float())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("length", [1000, 4096])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel", ["softmax", "relu"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_against_float64(backend, kernel, causal, length, dtype):
    if backend == "fla" and not fla_available():
        pytest.skip("flash-linear-attention not installed")
    if backend == "fla" and not causal:
        pytest.skip("bidirectional attention has no backend choice (two matmuls)")
    q, k, v = heads(length)
    w = draw_projection("orthogonal", 256, 64, generator=torch.Generator().manual_seed(1))
    w = w.double().cuda()
    reference_kernel = causal_kernel("torch", 64) if causal else None
    reference = PerformerAttention(kernel, causal, causal_kernel=reference_kernel)(q, k, v, w)
    kernel_fn = causal_kernel(backend, 64) if causal else None
    out = run(PerformerAttention(kernel, causal, causal_kernel=kernel_fn), q, k, v, w, dtype)
    assert torch.isfinite(out).all()
    assert relative_error(out, reference) < TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("causal", [False, True])
def test_exact_sdpa_against_float64(causal, dtype):
    q, k, v = heads(4096)
    reference = exact_attention(q, k, v, causal)
    out = exact_attention(*(t.to(dtype) for t in (q, k, v)), causal)
    assert relative_error(out, reference) < TOLERANCE[dtype]


@pytest.mark.parametrize("kernel", ["softmax", "relu"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_segments_on_gpu_match_float64(backend, kernel):
    """Causal attention with 3 proteins per row (fla: cu_seqlens on the flattened batch)."""
    if backend == "fla" and not fla_available():
        pytest.skip("flash-linear-attention not installed")
    q, k, v = (torch.cat([t, t.flip(2)]) for t in heads(1000))  # B = 2
    ids = torch.tensor([[0] * 300 + [1] * 450 + [2] * 250, [0] * 100 + [1] * 900]).cuda()
    w = draw_projection("orthogonal", 256, 64, generator=torch.Generator().manual_seed(1))
    w = w.double().cuda()
    reference = PerformerAttention(kernel, True, causal_kernel=causal_kernel("torch", 64))
    expected = reference(q, k, v, w, segment_ids=ids)
    performer = PerformerAttention(kernel, True, causal_kernel=causal_kernel(backend, 64))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = performer(*(t.float() for t in (q, k, v)), w.float(), segment_ids=ids)
    assert relative_error(out, expected) < TOLERANCE[torch.bfloat16]
