"""Decoding one token at a time (``ProteinLanguageModel.step`` with the recurrent FAVOR+ state
or the KV cache) reproduces the full causal forward; sampling is the same either way."""

from __future__ import annotations

import pytest
import torch

from protperf.attention import AttentionConfig
from protperf.inference.decoding import FullForwardDecoder, IncrementalDecoder
from protperf.inference.generate import Sampler, SamplingConfig
from protperf.model.config import ModelConfig
from protperf.model.transformer import ProteinLanguageModel
from tests.inference.conftest import tiny_model

# float64 runs agree to rounding; float32 (the default dtype) to this absolute tolerance on
# logits of magnitude ~10 (the chunked scan and the step sum in different orders)
TOL64, TOL32 = 1e-9, 2e-4


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


def test_bidirectional_models_do_not_decode():
    with pytest.raises(ValueError, match=r"incremental decoding needs a causal "
                                         r"\(task\.objective=clm\) model"):
        IncrementalDecoder(tiny_model("favor_softmax", causal=False), 2, 10)


def test_block_step_equals_the_last_position_of_block_forward():
    model = tiny_model("favor_softmax")
    block, caches = model.blocks[0], model.new_caches(2, 12)
    x = torch.randn(2, 12, model.config.dim, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = block(x, rotary=model.rotary)
        steps = [block.step(x[:, t:t + 1], caches[0],
                            lambda q, k, t=t: model.rotary(q, k, start=t)) for t in range(12)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=0, atol=TOL64)


@pytest.mark.parametrize("kind", ["favor_softmax", "exact"])
def test_decoding_follows_the_imported_architecture_knobs(kind):
    """Post-LN blocks, embedding LayerNorm, no final LayerNorm, token-type vector, token
    dropout (no <mask> in the prefix) and the LM-head transform: step equals forward."""
    torch.manual_seed(0)
    config = ModelConfig(
        dim=32, num_heads=2, num_layers=2, ffn_dim=64, dropout=0.0, position="learned",
        max_position=64, attention=AttentionConfig(kind=kind, num_features=16),
        norm_placement="post", embedding_norm=True, final_norm=False, token_type_vector=True,
        token_dropout=True, lm_head_transform=True)
    model = ProteinLanguageModel(config, causal=True).double().eval()
    with torch.no_grad():
        model.token_type.normal_()
    ids = torch.randint(5, 25, (2, 30), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids)
    decoder = IncrementalDecoder(model, 2, 30)
    steps = torch.stack([decoder.step(ids[:, t]) for t in range(30)], 1)
    torch.testing.assert_close(steps, full, rtol=0, atol=TOL64)
