"""Gradients written over q, k, v (``grads_in_place``): the same gradients, bit for bit, and
never over a tensor someone else can read (leaves, heads sharing memory), or loudly."""

import pytest
import torch

from protperf.attention.config import AttentionConfig
from protperf.attention.layer import MultiHeadAttention
from protperf.attention.ops import favor_chunked, favor_linear
from protperf.attention.ops.favor_linear import overwritable
from tests.attention.test_recompute import heads, padding, projection

BLOCK = 16  # several blocks of 45 positions: gradients land block by block


def attention(causal, kernel, mask, grads_in_place):
    w = projection()
    if causal:
        return lambda q, k, v: favor_chunked.favor_chunked_attention(
            q, k, v, w, kernel, 1e-3, mask, 4, BLOCK, grads_in_place=grads_in_place)
    return lambda q, k, v: favor_linear.favor_linear_attention(
        q, k, v, w, kernel, 1e-3, mask, BLOCK, grads_in_place=grads_in_place)


def run(fn, leaves, through=lambda t: t * 1.0):
    """fn of heads computed from fresh leaves (non-leaf heads, as a layer's projections) ->
    (the heads after backward, the leaves' gradients)."""
    leaves = [t.detach().clone().requires_grad_() for t in leaves]
    heads_ = [through(t) for t in leaves]
    upstream = torch.randn(2, 3, 45, 5, generator=torch.Generator().manual_seed(2),
                           dtype=leaves[0].dtype)
    (fn(*heads_) * upstream).sum().backward()
    return [t.detach() for t in heads_], [t.grad for t in leaves]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel", ["softmax", "relu"])
@pytest.mark.parametrize("masked", [False, True])
def test_gradients_in_place_equal_fresh_ones_and_replace_the_heads(causal, kernel, masked):
    mask = padding() if masked else None
    leaves = heads()
    _, fresh = run(attention(causal, kernel, mask, False), leaves)
    after, in_place = run(attention(causal, kernel, mask, True), leaves)
    for grad, reused, head in zip(fresh, in_place, after, strict=True):
        assert torch.equal(grad, reused)
        assert torch.equal(head, grad)  # the head's memory now holds its gradient (x 1.0)


@pytest.mark.parametrize("causal", [False, True])
def test_leaves_and_heads_without_the_flag_keep_their_values(causal):
    leaves = heads()
    _, fresh = run(attention(causal, "softmax", None, False), leaves)
    for grads_in_place, through in ((True, lambda t: t), (False, lambda t: t * 1.0)):
        after, grads = run(attention(causal, "softmax", None, grads_in_place), leaves, through)
        for head, leaf, grad, reference in zip(after, leaves, grads, fresh, strict=True):
            assert torch.equal(head, leaf)
            assert torch.equal(grad, reference)


@pytest.mark.parametrize("causal", [False, True])
def test_heads_sharing_memory_are_not_overwritten(causal):
    q, _, v = heads(dv=8)
    base = q.detach().clone().requires_grad_()
    shared = base * 1.0  # q and k one tensor, v a second: a block of dq would overwrite k
    assert overwritable(shared, shared, v * 1.0, True) == (False, False, False)
    fn = attention(causal, "softmax", None, True)
    out = fn(shared, shared, v)
    out.sum().backward()
    reference = base.detach().clone().requires_grad_()
    attention(causal, "softmax", None, False)(reference * 1.0, reference * 1.0, v).sum().backward()
    assert torch.equal(base.grad, reference.grad)
    assert torch.equal(shared.detach(), base.detach())


def test_only_heads_that_need_a_gradient_and_are_no_leaves_are_overwritten():
    q, k, v = heads()
    leaf = q.detach().clone().requires_grad_()
    assert overwritable(leaf * 1.0, k * 1.0, v, True) == (True, False, False)  # k, v no grad
    assert overwritable(leaf * 1.0, leaf, v, True) == (True, False, False)
    assert overwritable(leaf * 1.0, leaf * 2.0, leaf * 3.0, False) == (False, False, False)
    with torch.no_grad():
        assert overwritable(leaf * 1.0, leaf * 2.0, leaf * 3.0, True) == (False,) * 3


def test_a_head_saved_by_another_node_fails_loudly_not_silently():
    """Another node that saved q before the attention reads it after the attention's
    backward: autograd's version check refuses instead of using the overwritten values."""
    leaves = [t.detach().clone().requires_grad_() for t in heads()]
    q, k, v = (t * 1.0 for t in leaves)
    side = (q * q).sum()  # saves q; its backward runs after the attention's
    out = attention(True, "softmax", None, True)(q, k, v)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (out.sum() + side).backward()


@pytest.mark.parametrize("kind", ["favor_softmax", "favor_relu"])
@pytest.mark.parametrize("causal", [False, True])
def test_the_layer_writes_gradients_in_place_and_they_equal_fresh_ones(kind, causal,
                                                                       monkeypatch):
    """The layer's forward owns its heads: it asks for grads_in_place, and its gradients
    equal those of the same heads attended with fresh gradient tensors."""
    torch.manual_seed(0)
    layer = MultiHeadAttention(24, 3, AttentionConfig(kind=kind, num_features=16), causal)
    layer.double()
    x = torch.randn(2, 40, 24, dtype=torch.float64)

    def grads(forward):
        layer.zero_grad(set_to_none=True)
        inputs = x.clone().requires_grad_()
        forward(inputs).pow(2).sum().backward()
        return [inputs.grad] + [p.grad for p in layer.parameters()]

    module = favor_chunked if causal else favor_linear
    name = "favor_chunked_attention" if causal else "favor_linear_attention"
    original, flags = getattr(module, name), []

    def spy(*args, **kwargs):
        flags.append(kwargs.get("grads_in_place", False))
        return original(*args, **kwargs)

    monkeypatch.setattr(f"protperf.attention.performer.{name}", spy)
    in_place = grads(layer)
    fresh = grads(lambda inputs: layer._output(layer.attend(*layer.project(inputs))))
    assert flags == [True, False]
    for a, b in zip(in_place, fresh, strict=True):
        assert torch.equal(a, b)
