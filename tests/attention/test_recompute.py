"""The kernels that recompute features in backward (favor_linear, favor_chunked) against the
kernels that keep them (favor_bidirectional, favor_scan) and the O(L^2) reference: values and
gradients, softmax / ReLU x bidirectional / causal x padding, several blocks and chunks."""

import pytest
import torch

from protperf.attention.ops.favor_chunked import favor_chunked_attention
from protperf.attention.ops.favor_linear import favor_linear_attention
from protperf.attention.ops.feature_autograd import Workspace
from protperf.attention.ops.feature_maps import draw_projection, performer_feature_maps
from protperf.attention.performer import favor_bidirectional, favor_scan
from tests.attention.helpers import performer_config
from tests.attention.reference import linear_attention_reference

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


def heads(length=45, d=8, dv=5, dtype=torch.float64, scale=2.0, seed=0):
    """q, k, v in the layer's layout: (B, H, L, .) views of (B, L, H, .) tensors."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (scale * torch.randn(2, length, 3, n, generator=gen, dtype=dtype)
               for n in (d, d, dv))
    return [t.transpose(1, 2) for t in (q, k, v)]


def padding(length=45):
    mask = torch.ones(2, length, dtype=torch.bool)
    mask[0, :4] = False  # leading padding: the causal stabilizer looks ahead to a real key
    mask[1, -7:] = False
    return mask


def projection(m=16, d=8, dtype=torch.float64):
    gen = torch.Generator().manual_seed(1)
    return draw_projection("orthogonal", m, d, generator=gen).to(dtype)


def recomputed(q, k, v, w, kernel, causal, mask, block, chunk=4):
    if causal:
        return favor_chunked_attention(q, k, v, w, kernel, 1e-3, mask, chunk, block)
    return favor_linear_attention(q, k, v, w, kernel, 1e-3, mask, block)


def kept(q, k, v, w, kernel, causal, mask, chunk=4):
    """Today's kernels of kept features (autograd of the feature maps)."""
    config = performer_config(kernel, chunk_size=chunk)
    return (favor_scan if causal else favor_bidirectional)(q, k, v, w, config, mask)


def reference(q, k, v, w, kernel, causal, mask):
    """The oracle: features of feature_maps, then the quadratic normalized attention."""
    q_prime, k_prime, s = performer_feature_maps(q, k, w, kernel, mask, causal_keys=causal)
    return linear_attention_reference(q_prime, k_prime, v, causal, key_log_scale=s)


def values_and_grads(fn, leaves, upstream, mask):
    leaves = [t.detach().clone().requires_grad_() for t in leaves]
    out = fn(*leaves)
    if mask is not None:  # real queries only (the reference's rows of no key are 0 / 0)
        out = torch.where(mask[:, None, :, None], out, 0.0)
    (out * upstream).sum().backward()
    return out, [t.grad for t in leaves]


def relative(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel", ["softmax", "relu"])
@pytest.mark.parametrize("block", [8, 64])  # several blocks (a partial last one), one
def test_recomputing_kernels_equal_todays_and_the_reference(kernel, causal, masked, dtype,
                                                            block):
    q, k, v = heads(dtype=dtype)
    w, mask = projection(dtype=dtype), padding() if masked else None
    upstream = torch.randn(2, 3, 45, 5, dtype=dtype, generator=torch.Generator().manual_seed(3))
    got, got_grads = values_and_grads(
        lambda a, b, c: recomputed(a, b, c, w, kernel, causal, mask, block), (q, k, v),
        upstream, mask)
    for oracle in (kept, reference):
        want, want_grads = values_and_grads(
            lambda a, b, c, oracle=oracle: oracle(a, b, c, w, kernel, causal, mask), (q, k, v),
            upstream, mask)
        assert relative(got, want) < TOLERANCE[dtype]
        if oracle is reference and causal and masked:
            continue  # the reference's 0 / 0 rows (leading padding) give NaN gradients
        for g, e in zip(got_grads, want_grads, strict=True):
            assert relative(g, e) < TOLERANCE[dtype]
    if masked:  # padding keys get no gradient
        assert (got_grads[1][1, :, -7:] == 0).all() and (got_grads[2][0, :, :4] == 0).all()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel", ["softmax", "relu"])
def test_recomputing_kernels_gradcheck(kernel, causal):
    q, k, v = (t[:1, :2].detach().clone().requires_grad_()
               for t in heads(length=11, d=4, dv=3, scale=1.0))
    w, mask = projection(m=8, d=4), padding(11)[1:]
    assert torch.autograd.gradcheck(
        lambda a, b, c: recomputed(a, b, c, w, kernel, causal, mask, block=4, chunk=2),
        (q, k, v))


@pytest.mark.parametrize("causal", [False, True])
def test_no_feature_tensor_is_saved_for_backward(causal):
    length, m = 64, 32
    q, k, v = (t.detach().requires_grad_() for t in heads(length=length, dtype=torch.float32))
    w = projection(m=m, dtype=torch.float32)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        recomputed(q, k, v, w, "softmax", causal, None, block=16)
    # heads (B H L d), the block states (B H L / 16 m (dv + 1)); a feature tensor is B H L m
    assert saved and max(t.numel() for t in saved) < 2 * 3 * length * m / 2


def test_causal_kernel_stays_exact_across_huge_stabilizer_jumps_between_blocks():
    q, k, v = heads(length=40, scale=1.0)
    k = k.clone()
    k[:, :, 17] *= 30.0  # a key whose feature exponent jumps by hundreds, mid block
    w = projection()
    got = recomputed(q, k, v, w, "softmax", True, None, block=8)
    want = reference(q, k, v, w, "softmax", True, None)
    assert torch.isfinite(got).all() and relative(got, want) < 1e-10


def test_inference_keeps_no_states_and_gives_the_same_output():
    q, k, v = heads(dtype=torch.float32)
    w = projection(dtype=torch.float32)
    with torch.inference_mode():
        fast = recomputed(q, k, v, w, "softmax", True, None, block=8)
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    torch.testing.assert_close(fast, recomputed(*leaves, w, "softmax", True, None, block=8))


def test_recomputing_kernels_refuse_bad_arguments():
    q, k, v = heads()
    w = projection()
    with pytest.raises(ValueError, match="not a multiple of chunk_size"):
        favor_chunked_attention(q, k, v, w, "softmax", chunk=4, block=6)
    with pytest.raises(ValueError, match="chunk_size must be > 0"):
        favor_chunked_attention(q, k, v, w, "softmax", chunk=0)
    with pytest.raises(ValueError, match="fixed random projection"):
        favor_linear_attention(q, k, v, w.clone().requires_grad_(), "relu")


@pytest.mark.parametrize("causal", [False, True])
def test_a_trained_projection_takes_the_feature_keeping_kernel(causal):
    """Attention transfer may train the projection (``qk_features``): the recomputing kernels
    refuse it, so the layer's kernel hands it to the feature-keeping one, gradient included."""
    from protperf.attention.performer import favor_chunked, favor_linear

    q, k, v = heads()
    w = projection().requires_grad_(True)
    config = performer_config("softmax")
    kernel, keeping = (favor_chunked, favor_scan) if causal else (favor_linear, favor_bidirectional)
    out = kernel(q, k, v, w, config)
    torch.testing.assert_close(out, keeping(q, k, v, w, config), rtol=1e-12, atol=1e-12)
    out.sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


@pytest.mark.parametrize("causal", [False, True])
def test_output_merges_heads_without_a_copy(causal):
    q, k, v = heads(dtype=torch.float32)
    out = recomputed(q, k, v, projection(dtype=torch.float32), "softmax", causal, None, 8)
    b, h, length, dv = out.shape
    assert out.transpose(1, 2).reshape(b, length, h * dv).data_ptr() == out.data_ptr()
    assert out.transpose(1, 2).is_contiguous()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("block", [8, 64])
def test_causal_softmax_with_trailing_padding_only(dtype, block):
    """Every row's first key real: the stabilizer is formed block by block (no pass ahead)."""
    q, k, v = heads(dtype=dtype)
    w = projection(dtype=dtype)
    mask = torch.ones(2, 45, dtype=torch.bool)
    mask[1, -7:] = False
    mask[0, 20:30] = False  # inside a block and across a block boundary (block 8)
    upstream = torch.randn(2, 3, 45, 5, dtype=dtype, generator=torch.Generator().manual_seed(3))
    got, got_grads = values_and_grads(
        lambda a, b, c: recomputed(a, b, c, w, "softmax", True, mask, block), (q, k, v),
        upstream, mask)
    for oracle in (kept, reference):
        want, want_grads = values_and_grads(
            lambda a, b, c, oracle=oracle: oracle(a, b, c, w, "softmax", True, mask),
            (q, k, v), upstream, mask)
        assert relative(got, want) < TOLERANCE[dtype]
        for g, e in zip(got_grads, want_grads, strict=True):
            assert relative(g, e) < TOLERANCE[dtype]


def test_workspace_reuses_one_buffer_per_name_and_views_shorter_blocks():
    work = Workspace(torch.empty(0, dtype=torch.float64))
    full = work.get("x", 2, 3, 8, 4)
    assert full.is_contiguous() and full.dtype == torch.float64
    last = work.get("x", 2, 3, 5, 4)  # a partial last block: a contiguous view, no new buffer
    assert last.is_contiguous() and last.data_ptr() == full.data_ptr()
    assert work.get("y", 2, 3, 8, 4).data_ptr() != full.data_ptr()
    assert work.get("x", 2, 3, 9, 4).shape == (2, 3, 9, 4)  # grown when a shape needs more
