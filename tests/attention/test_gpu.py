"""GPU checks (marker ``gpu``, skipped without CUDA): every backend against float64, values
and gradients.

Relative Frobenius errors of the attention output and of the gradients of q, k, v against the
same Performer (same random features, same mode rules) computed in float64 on the GPU.
Tolerances: float32 inputs 2e-3 for values, 5e-3 for gradients (fla's Triton kernels and
cuBLAS may use TF32 for float32 matmuls); bf16 autocast 3e-2 for values, 5e-2 for gradients
(bf16 feature/value storage, fp32 accumulation); exact SDPA the same against float64 SDPA.
Both kernels, both directions, plain inputs at L = 1000 and 4096, and padded rows with three
proteins per row (segments); ``auto`` is checked for the modes it picks and end to end on a
layer. fla's softmax (gated) backward is skipped where fla refuses it (Hopper + Triton
3.4 <= v < 3.7.1 without tilelang): there the layer refuses ``backend=fla`` at construction
and ``auto`` runs softmax on torch.
"""

import pytest
import torch

from protperf.attention import AttentionConfig, MultiHeadAttention
from protperf.attention.backends import attention_mode
from protperf.attention.ops.causal_fla import fla_available, gated_backward_problem
from protperf.attention.ops.exact import exact_attention
from protperf.attention.ops.feature_maps import draw_projection

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

TOLERANCE = {torch.float32: 2e-3, torch.bfloat16: 3e-2}
GRAD_TOLERANCE = {torch.float32: 5e-3, torch.bfloat16: 5e-2}
BACKENDS = ["torch", "fla", "auto"]
KERNELS = ["softmax", "relu"]


def heads(length, batch=1, d=64, heads=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, length, d, generator=gen, dtype=torch.float64).cuda()
            for _ in range(3)]


def projection():
    w = draw_projection("orthogonal", 256, 64, generator=torch.Generator().manual_seed(1))
    return w.double().cuda()


def padded_segments(length=1000):
    """Two rows: three proteins, and two proteins followed by 200 padding positions."""
    ids = torch.tensor([[0] * 300 + [1] * 450 + [2] * 250,
                        [0] * 100 + [1] * 700 + [2] * 200]).cuda()
    mask = torch.ones(2, length, dtype=torch.bool)
    mask[1, 800:] = False
    return mask.cuda(), ids


def relative_error(out, reference):
    return ((out.double() - reference).norm() / reference.norm()).item()


def skip_unavailable(backend, kernel, causal):
    if backend == "fla" and not fla_available():
        pytest.skip("flash-linear-attention not installed")
    if backend == "fla" and not causal:
        pytest.skip("bidirectional attention has no backend choice (two matmuls)")
    if backend == "fla" and kernel == "softmax" and (problem := gated_backward_problem()):
        pytest.skip(problem)


def values_and_gradients(q, k, v, w, kernel, causal, backend, dtype, mask=None, ids=None):
    """Output and d(out . upstream)/d(q, k, v) of Performer attention (float64 for float64
    inputs; ``dtype`` float32 or bfloat16 autocast otherwise); also the mode it ran."""
    leaves = [t.detach().clone().to(torch.float64 if dtype == torch.float64 else torch.float32)
              .requires_grad_() for t in (q, k, v)]
    config = AttentionConfig(kind=f"favor_{kernel}", backend=backend, chunk_size=64)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        attention = attention_mode(config, causal, leaves[0], ids)
        mode = attention.__name__
        out = attention(*leaves, w.to(leaves[0].dtype), config, mask, ids)
    upstream = torch.randn(out.shape, generator=torch.Generator("cuda").manual_seed(2),
                           device="cuda", dtype=torch.float64)
    (out.double() * upstream).sum().backward()
    return out, [t.grad for t in leaves], mode


def check_against_float64(q, k, v, kernel, causal, backend, dtype, mask=None, ids=None):
    w = projection()
    expected, expected_grads, _ = values_and_gradients(q, k, v, w, kernel, causal, "torch",
                                                       torch.float64, mask, ids)
    out, grads, mode = values_and_gradients(q, k, v, w, kernel, causal, backend, dtype, mask,
                                            ids)
    assert torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads)
    real = 1.0 if mask is None else mask[:, None, :, None]  # values at real queries
    errors = [relative_error(out * real, expected * real)]
    errors += [relative_error(g, e) for g, e in zip(grads, expected_grads, strict=True)]
    assert errors[0] < TOLERANCE[dtype], (mode, errors)
    assert max(errors[1:]) < GRAD_TOLERANCE[dtype], (mode, errors)
    return mode


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("length", [1000, 4096])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_against_float64(backend, kernel, causal, length, dtype):
    skip_unavailable(backend, kernel, causal)
    mode = check_against_float64(*heads(length), kernel, causal, backend, dtype)
    expected = {"torch": "favor_scan", "fla": "favor_fla"}.get(backend)
    if not causal:
        assert mode == "favor_bidirectional"
    elif expected is not None:
        assert mode == expected
    else:  # auto: fla where it imports and can run the backward, else torch's scan
        gated_ok = kernel == "relu" or gated_backward_problem() is None
        assert mode == ("favor_fla" if fla_available() and gated_ok else "favor_scan")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_padding_and_segments_against_float64(backend, kernel, causal, dtype):
    """Three proteins per row, padding (fla: cu_seqlens on the flattened batch)."""
    skip_unavailable(backend, kernel, causal)
    q, k, v = heads(1000, batch=2)
    mask, ids = padded_segments()
    check_against_float64(q, k, v, kernel, causal, backend, dtype, mask, ids)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("causal", [False, True])
def test_exact_sdpa_against_float64(causal, dtype):
    q, k, v = heads(4096)
    reference = exact_attention(q, k, v, causal)
    out = exact_attention(*(t.to(dtype) for t in (q, k, v)), causal)
    assert relative_error(out, reference) < TOLERANCE[dtype]


@pytest.mark.parametrize("kind", ["favor_softmax", "favor_relu", "exact"])
def test_auto_layer_under_bf16_against_float64(kind):
    """The layer as training builds it (backend=auto, causal, segments) on the GPU in bf16
    autocast: output and every parameter gradient against the same layer in float64."""
    torch.manual_seed(0)
    layer = MultiHeadAttention(512, 8, AttentionConfig(kind=kind), causal=True).cuda()
    reference = MultiHeadAttention(512, 8, AttentionConfig(kind=kind), causal=True).cuda()
    reference.load_state_dict(layer.state_dict())
    reference.double()
    x = torch.randn(2, 1000, 512, generator=torch.Generator().manual_seed(3)).cuda()
    mask, ids = padded_segments()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = layer(x, mask, segment_ids=ids)
    expected = reference(x.double(), mask, segment_ids=ids)
    upstream = torch.randn(out.shape, generator=torch.Generator("cuda").manual_seed(4),
                           device="cuda", dtype=torch.float64)
    (out.double() * upstream).sum().backward()
    (expected * upstream).sum().backward()
    assert relative_error(out, expected) < TOLERANCE[torch.bfloat16]
    # all parameter gradients as one vector (exact attention's key bias has gradient 0)
    grads = torch.cat([p.grad.flatten() for p in layer.parameters()])
    grads64 = torch.cat([p.grad.flatten() for p in reference.parameters()])
    assert relative_error(grads, grads64) < GRAD_TOLERANCE[torch.bfloat16]
