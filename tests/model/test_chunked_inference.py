"""Inference in chunks of positions (``protperf.model.chunked``, the attention layer's chunked
projections): the same outputs as the whole-sequence path, one chunk of MLP hidden at a time,
and training untouched."""

from __future__ import annotations

import pytest
import torch

import protperf.attention.layer as attention_layer
import protperf.model.chunked as chunked
from protperf.attention import AttentionConfig
from protperf.data.alphabet import ALPHABET
from protperf.model.config import ModelConfig
from protperf.model.transformer import ProteinLanguageModel

LENGTH = 45  # several chunks of 8 positions and a partial one
CHUNK = 8


def model_of(kind: str, causal: bool, post_norm: bool, dtype=torch.float32):
    torch.manual_seed(0)
    knobs = (dict(norm_placement="post", position="learned", embedding_norm=True,
                  final_norm=False, lm_head_transform=True) if post_norm else
             dict(position="rotary", token_dropout=True, lm_head_transform=True))
    config = ModelConfig(name=kind, dim=16, num_heads=2, num_layers=2, ffn_dim=48, dropout=0.0,
                         max_position=64, attention=AttentionConfig(kind=kind, num_features=16),
                         **knobs)
    return ProteinLanguageModel(config, causal=causal).to(dtype).eval()


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 8 positions of a batch of 2: MLP hidden 48 and projection width 16 float32s
    per position."""
    monkeypatch.setattr(chunked, "CHUNK_BYTES", CHUNK * 2 * 48 * 4)
    monkeypatch.setattr(chunked, "MIN_CHUNK", 1)
    monkeypatch.setattr(attention_layer, "CHUNK_BYTES", CHUNK * 2 * 16 * 4)
    monkeypatch.setattr(attention_layer, "MIN_CHUNK", 1)


def batch():
    """Two rows, the second padded after 30 tokens; a <mask> token (token dropout)."""
    torch.manual_seed(1)
    ids = torch.randint(5, 25, (2, LENGTH))
    mask = torch.ones(2, LENGTH, dtype=torch.bool)
    mask[1, 30:] = False
    ids[1, 30:] = ALPHABET.pad_id
    ids[0, 5] = ALPHABET.mask_id
    return ids, mask


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("post_norm", [False, True], ids=["pre_ln", "post_ln"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("kind", ["exact", "favor_softmax", "favor_relu", "identity"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chunked_logits_equal_the_whole_sequence_path(kind, causal, post_norm, dtype):
    model = model_of(kind, causal, post_norm, dtype)
    ids, mask = batch()
    whole = model(ids, attention_mask=mask).detach()  # autograd on: the whole-sequence path
    with torch.no_grad():
        no_grad = model(ids, attention_mask=mask)
    with torch.inference_mode():
        inference = model(ids, attention_mask=mask)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-12
    for got in (no_grad, inference):
        torch.testing.assert_close(got, whole, rtol=tolerance, atol=tolerance)


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("kind", ["exact", "favor_relu"])
def test_chunked_representations_equal_the_whole_sequence_path(kind):
    model = model_of(kind, causal=False, post_norm=False)
    ids, mask = batch()
    whole = model.representations(ids, [0, 1, 2], attention_mask=mask)
    with torch.no_grad():
        chunks = model.representations(ids, [0, 1, 2], attention_mask=mask)
        hidden = model.hidden_states(ids, attention_mask=mask)
    for layer in whole:
        torch.testing.assert_close(chunks[layer], whole[layer].detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(hidden, whole[2].detach(), rtol=1e-6, atol=1e-6)


def hidden_lengths(model):
    """Positions of every MLP hidden and q/k/v projection made during a call (hooks)."""
    seen = {"ffn": [], "q_proj": [], "lm_head": []}
    for block in model.blocks:
        block.ffn.fc_in.register_forward_hook(lambda m, i, o: seen["ffn"].append(o.shape[1]))
        block.attn.q_proj.register_forward_hook(
            lambda m, i, o: seen["q_proj"].append(o.shape[1]))
    model.lm_head.register_forward_hook(lambda m, i, o: seen["lm_head"].append(o.shape[1]))
    return seen


@pytest.mark.usefixtures("small_chunks")
def test_inference_holds_one_chunk_of_hidden_at_a_time():
    model = model_of("favor_relu", causal=False, post_norm=False)
    seen = hidden_lengths(model)
    ids, mask = batch()
    with torch.no_grad():
        model(ids, attention_mask=mask)
    chunks = [CHUNK] * (LENGTH // CHUNK) + [LENGTH % CHUNK]
    head = CHUNK * 48 // model.config.vocab_size  # the LM head's widest activation: logits
    head_chunks = [head] * (LENGTH // head) + [LENGTH % head]
    assert seen == {"ffn": chunks * 2, "q_proj": chunks * 2, "lm_head": head_chunks}


@pytest.mark.usefixtures("small_chunks")
def test_training_and_train_mode_keep_the_whole_sequence():
    model = model_of("favor_relu", causal=True, post_norm=False)
    seen = hidden_lengths(model)
    ids, mask = batch()
    model(ids, attention_mask=mask).sum().backward()  # autograd: whole sequence
    model.train()
    with torch.no_grad():  # train mode (dropout): whole sequence
        model(ids, attention_mask=mask)
    assert seen == {"ffn": [LENGTH] * 4, "q_proj": [LENGTH] * 4, "lm_head": [LENGTH] * 2}


def test_default_chunks_leave_short_sequences_whole():
    model = model_of("favor_relu", causal=False, post_norm=False)
    seen = hidden_lengths(model)
    ids, mask = batch()
    with torch.no_grad():
        model(ids, attention_mask=mask)
    assert seen == {"ffn": [LENGTH] * 2, "q_proj": [LENGTH] * 2, "lm_head": [LENGTH]}


def test_chunk_length_follows_the_byte_budget():
    assert chunked.chunk_length(1, 1280, 4) == chunked.CHUNK_BYTES // (1280 * 4)
    assert chunked.chunk_length(64, 2**20, 4) == chunked.MIN_CHUNK
    assert chunked.position_chunks(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("kind", ["exact", "favor_softmax", "favor_relu"])
def test_chunked_packed_windows_equal_the_whole_sequence_path(kind, causal):
    model = model_of(kind, causal, post_norm=False)
    ids, _ = batch()
    segments = (torch.arange(LENGTH) >= 20).long().expand(2, LENGTH)  # two proteins per row
    whole = model(ids, segment_ids=segments).detach()
    with torch.no_grad():
        chunks = model(ids, segment_ids=segments)
    torch.testing.assert_close(chunks, whole, rtol=1e-6, atol=1e-6)
