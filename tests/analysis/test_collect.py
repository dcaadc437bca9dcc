"""Wiring to models: hooks see each layer's input; collected sums equal explicit aggregates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from protperf.analysis.aggregate import aggregate_attention
from protperf.analysis.attention_maps import attention_maps
from protperf.analysis.collect import ModelAttentionCollector
from protperf.analysis.residues import residue_index
from protperf.attention import AttentionConfig, MultiHeadAttention

from .conftest import ALPHABET


class TinyModel(nn.Module):
    """Embedding + pre-norm attention blocks, called like the real model."""

    def __init__(self, kind: str, causal: bool, layers: int = 2, dim: int = 16, heads: int = 2):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(ALPHABET.vocab_size, dim)
        config = AttentionConfig(kind=kind, num_features=8)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.attns = nn.ModuleList(
            MultiHeadAttention(dim, heads, config, causal=causal) for _ in range(layers)
        )
        self.head = nn.Linear(dim, ALPHABET.vocab_size)

    def forward(self, input_ids, attention_mask=None):
        x = self.embed(input_ids)
        for norm, attn in zip(self.norms, self.attns, strict=True):
            x = x + attn(norm(x), attention_mask=attention_mask)
        return self.head(x)


def padded_batch():
    sequences = ["MKTAYIAKQRQISFVKSHFSRQ", "ACDXEFGBHIKZ", "GGWWCCAP"]
    length = max(len(s) for s in sequences) + 2
    tokens = torch.zeros(len(sequences), length, dtype=torch.long)
    mask = torch.zeros(len(sequences), length, dtype=torch.bool)
    for row, seq in enumerate(sequences):
        ids = [ALPHABET.cls_id] + [ALPHABET.tokens.index(c) for c in seq] + [ALPHABET.eos_id]
        tokens[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = True
    return tokens, mask


@pytest.mark.parametrize("kind", ["exact", "favor_softmax", "favor_relu"])
@pytest.mark.parametrize("causal", [False, True])
def test_collector_equals_explicit_aggregate_of_attention_maps(kind, causal):
    model = TinyModel(kind, causal).double()
    tokens, mask = padded_batch()
    collector = ModelAttentionCollector(model, block_size=4)
    collector.add(tokens, mask)
    collector.add(tokens[:2], mask[:2])
    maps = attention_maps(model, tokens, mask)  # (layers, B, H, L, L) float32, for plots
    assert maps.shape == (2, 3, 2, tokens.shape[1], tokens.shape[1])
    residues = residue_index(tokens, mask)
    explicit = np.stack([
        aggregate_attention(maps[layer].double(), residues).numpy()
        + aggregate_attention(maps[layer, :2].double(), residues[:2]).numpy()
        for layer in range(2)
    ])
    np.testing.assert_allclose(collector.totals.sums, explicit, rtol=0, atol=1e-5)
    assert collector.totals.tally.rows == 5
    for module in model.attns:
        assert not module._forward_pre_hooks  # hooks removed


def test_collector_float64_matches_to_1e8():
    model = TinyModel("favor_softmax", causal=True).double()
    tokens, mask = padded_batch()
    collector = ModelAttentionCollector(model, block_size=3, vig=False)
    collector.add(tokens, mask)
    captured = {}

    def keep(module, args, kwargs):
        captured.setdefault(module, args[0] if args else kwargs["x"])

    handles = [m.register_forward_pre_hook(keep, with_kwargs=True) for m in model.attns]
    with torch.no_grad():
        model(tokens, attention_mask=mask)
    for handle in handles:
        handle.remove()
    residues = residue_index(tokens, mask)
    for layer, module in enumerate(model.attns):
        with torch.no_grad():
            attention = module.attention_weights(captured[module], mask)
        np.testing.assert_allclose(
            collector.totals.sums[layer],
            aggregate_attention(attention, residues).numpy(),
            rtol=0,
            atol=1e-8,
        )


def test_model_without_attention_is_rejected():
    with pytest.raises(ValueError, match="Linear has no MultiHeadAttention module to analyze"):
        ModelAttentionCollector(nn.Linear(2, 2))
