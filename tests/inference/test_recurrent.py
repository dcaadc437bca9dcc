"""Recurrent FAVOR+ and KV-cache decoding reproduce the full causal forward."""

from __future__ import annotations

import pytest
import torch

from protperf.attention.backends import causal_kernel
from protperf.attention.ops.exact import exact_attention
from protperf.attention.ops.features import draw_projection
from protperf.attention.performer import PerformerAttention
from protperf.attention.recurrent import (
    empty_kv_cache,
    empty_recurrent_state,
    kv_cache_step,
    recurrent_favor_step,
)
from protperf.inference.decoding import FullForwardDecoder, IncrementalDecoder
from protperf.inference.generate import Sampler, SamplingConfig
from tests.inference.conftest import tiny_model

# float64 runs agree to rounding; float32 (the default dtype) to this absolute tolerance on
# logits of magnitude ~10 (the chunked scan and the step sum in different orders)
TOL64, TOL32 = 1e-9, 2e-4


def _heads(length: int, scale: float, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    q, k, v = (scale * torch.randn(2, 3, length, 8, generator=g, dtype=dtype) for _ in range(3))
    return q, k, v


@pytest.mark.parametrize("kernel", ["softmax", "relu"])
def test_recurrent_step_equals_chunked_causal_attention(kernel):
    # |q|, |k| ~ 4 sqrt(8): key feature exponents spread over tens of units, so a wrong
    # running stabilizer (or none) would be off by orders of magnitude or overflow
    q, k, v = _heads(70, 4.0)
    projection = draw_projection("orthogonal", 16, 8, generator=torch.Generator().manual_seed(2))
    chunked = PerformerAttention(kernel, causal=True, causal_kernel=causal_kernel("torch", 16))
    full = chunked(q, k, v, projection)
    state = empty_recurrent_state(2, 3, 16, 8, torch.float64)
    steps = []
    for t in range(70):
        out, state = recurrent_favor_step(q[:, :, t : t + 1], k[:, :, t : t + 1],
                                          v[:, :, t : t + 1], state, projection.double(), kernel)
        steps.append(out)
        assert state.sums.shape == (2, 3, 16, 9)  # constant-size state
    torch.testing.assert_close(torch.cat(steps, 2), full, rtol=0, atol=TOL64)


def test_recurrent_softmax_keeps_the_running_key_maximum():
    q, k, v = _heads(5, 4.0)
    projection = draw_projection("orthogonal", 16, 8).double()
    state = empty_recurrent_state(2, 3, 16, 8, torch.float64)
    maxima = []
    for t in range(5):
        _, state = recurrent_favor_step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1],
                                        state, projection, "softmax")
        maxima.append(state.key_log_scale.clone())
    kt = k * 8 ** -0.25
    logits = kt @ projection.T - 0.5 * (kt * kt).sum(-1, keepdim=True)
    expected = torch.cummax(logits.amax(-1), dim=-1).values
    torch.testing.assert_close(torch.stack(maxima, -1), expected, rtol=0, atol=1e-12)


def test_kv_cache_step_equals_causal_exact_attention():
    q, k, v = _heads(40, 1.0)
    full = exact_attention(q, k, v, causal=True)
    cache = empty_kv_cache(2, 3, 40, 8, torch.float64)
    steps = [kv_cache_step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1], cache)[0]
             for t in range(40)]
    torch.testing.assert_close(torch.cat(steps, 2), full, rtol=0, atol=TOL64)
    with pytest.raises(ValueError, match="KV cache is full"):
        kv_cache_step(q[:, :, :1], k[:, :, :1], v[:, :, :1], cache)


@pytest.mark.parametrize("kind", ["favor_softmax", "favor_relu", "exact", "identity"])
@pytest.mark.parametrize("position", ["learned", "rotary"])
def test_decoder_logits_equal_full_causal_forward_at_every_position(kind, position):
    ids = torch.randint(5, 25, (3, 80), generator=torch.Generator().manual_seed(3))
    for dtype, tol in ((torch.float64, TOL64), (torch.float32, TOL32)):
        model = tiny_model(kind, position=position, dtype=dtype)
        with torch.no_grad():
            full = model(ids)
        decoder = IncrementalDecoder(model, 3, 80)
        steps = torch.stack([decoder.step(ids[:, t]) for t in range(80)], 1)
        assert full.abs().max() > 3  # logits far from uniform: the test can fail
        torch.testing.assert_close(steps, full, rtol=0, atol=tol)


def test_performer_decoder_state_does_not_grow_but_kv_cache_does():
    performer = IncrementalDecoder(tiny_model("favor_softmax"), 2, 1000)
    exact = IncrementalDecoder(tiny_model("exact"), 2, 1000)
    assert performer.state_bytes() == 2 * 2 * 2 * 16 * 17 * 8  # layers x B x H x m x (d+1)
    assert exact.state_bytes() == 2 * 2 * 2 * 2 * 1000 * 16 * 8  # k and v per slot


@pytest.mark.parametrize("kind", ["favor_softmax", "favor_relu", "exact"])
def test_same_seed_same_samples_as_full_forward_sampling(kind):
    model = tiny_model(kind, weight_scale=3.0)
    sampling = SamplingConfig(temperature=1.0, top_k=10, top_p=0.95)
    cached = Sampler(model).sample(5, 40, seed=7, sampling=sampling, prompt="MK", batch_size=3)
    full = Sampler(model, "full").sample(5, 40, seed=7, sampling=sampling, prompt="MK",
                                         batch_size=3)
    assert cached == full
    assert all(s.startswith("MK") for s in cached)
    again = Sampler(model).sample(5, 40, seed=7, sampling=sampling, prompt="MK", batch_size=3)
    other = Sampler(model).sample(5, 40, seed=8, sampling=sampling, prompt="MK", batch_size=3)
    assert again == cached and other != cached


def test_full_forward_decoder_matches_incremental_one():
    model = tiny_model("favor_relu")
    ids = torch.randint(5, 25, (2, 10), generator=torch.Generator().manual_seed(0))
    a, b = IncrementalDecoder(model, 2, 10), FullForwardDecoder(model, 2, 10)
    for t in range(10):
        torch.testing.assert_close(a.step(ids[:, t]), b.step(ids[:, t]), rtol=0, atol=TOL64)
