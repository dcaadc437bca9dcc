"""Recurrent FAVOR+ steps and the exact KV cache reproduce the full causal attention."""

from __future__ import annotations

import pytest
import torch

from protperf.attention.ops.exact import exact_attention
from protperf.attention.ops.feature_maps import draw_projection
from protperf.attention.ops.recurrent import (
    empty_kv_cache,
    empty_recurrent_state,
    kv_cache_step,
)
from protperf.attention.performer import favor_chunked, performer_step
from tests.attention.helpers import performer_config

# float64 runs agree to rounding
TOL64 = 1e-9


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
    config = performer_config(kernel, chunk_size=16)
    full = favor_chunked(q, k, v, projection, config)
    state = empty_recurrent_state(2, 3, 16, 8, torch.float64)
    steps = []
    for t in range(70):
        steps.append(performer_step(q[:, :, t : t + 1], k[:, :, t : t + 1],
                                    v[:, :, t : t + 1], state, projection.double(), config))
        assert state.sums.shape == (2, 3, 16, 9)  # constant-size state
    torch.testing.assert_close(torch.cat(steps, 2), full, rtol=0, atol=TOL64)


def test_recurrent_softmax_keeps_the_running_key_maximum():
    q, k, v = _heads(5, 4.0)
    projection = draw_projection("orthogonal", 16, 8).double()
    state = empty_recurrent_state(2, 3, 16, 8, torch.float64)
    maxima = []
    for t in range(5):
        performer_step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1], state, projection,
                       performer_config("softmax"))
        maxima.append(state.key_log_scale.clone())
    kt = k * 8 ** -0.25
    logits = kt @ projection.T - 0.5 * (kt * kt).sum(-1, keepdim=True)
    expected = torch.cummax(logits.amax(-1), dim=-1).values
    torch.testing.assert_close(torch.stack(maxima, -1), expected, rtol=0, atol=1e-12)


def test_kv_cache_step_equals_causal_exact_attention():
    q, k, v = _heads(40, 1.0)
    full = exact_attention(q, k, v, causal=True)
    cache = empty_kv_cache(2, 3, 40, 8, torch.float64)
    steps = [kv_cache_step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1], cache)
             for t in range(40)]
    torch.testing.assert_close(torch.cat(steps, 2), full, rtol=0, atol=TOL64)
    with pytest.raises(ValueError, match="KV cache is full"):
        kv_cache_step(q[:, :, :1], k[:, :, :1], v[:, :, :1], cache)
