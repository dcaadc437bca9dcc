"""The random-initialisation floor and the calibrated per-head q-values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from protperf.analysis.config import AnalysisDataConfig, AnalyzeConfig
from protperf.analysis.null_models import (
    calibrate_heads,
    floor,
    null_p_values,
    random_init_like,
)
from protperf.analysis.pipeline import analyze_model
from protperf.analysis.summary import summary_line
from protperf.attention import AttentionConfig
from protperf.model.config import ModelConfig
from protperf.model.transformer import ProteinLanguageModel


def random_model(seed: int, kind: str = "favor_relu", length: int = 64) -> ProteinLanguageModel:
    torch.manual_seed(seed)
    config = ModelConfig(dim=32, num_heads=4, num_layers=2, ffn_dim=32, dropout=0.0,
                         position="learned", max_position=length,
                         attention=AttentionConfig(kind=kind, num_features=16))
    return ProteinLanguageModel(config, causal=False).eval()


def few_proteins(seed: int, null_models: int, permutations: int = 200) -> AnalyzeConfig:
    """6 proteins of the bundled sample cropped to 64 tokens: few pairs, a noisy matrix."""
    return AnalyzeConfig(data=AnalysisDataConfig(max_sequences=6, max_length=64),
                         methods=["similarity"], permutations=permutations,
                         null_models=null_models, progress=False, seed=seed)


def test_null_p_values_count_the_null_at_or_above():
    null = np.array([0.1, 0.2, 0.3, np.nan])
    p = null_p_values(np.array([0.25, 0.3, 0.5, np.nan]), null)
    np.testing.assert_allclose(p[:3], [2 / 4, 2 / 4, 1 / 4])  # (1 + #{null >= r}) / (1 + 3)
    assert np.isnan(p[3])
    assert floor([0.0, 1.0, np.nan]) == pytest.approx(0.95)
    assert floor([np.nan]) is None


def test_calibrated_q_is_the_bh_q_of_the_larger_p():
    table = pd.DataFrame({"kind": ["pooled", "head", "head"], "pearson_offdiag": [0.1, 0.5, 0.2],
                          "pearson_offdiag_p": [0.5, 0.001, 0.6]})
    out = calibrate_heads(table, null_head_r=np.array([0.0, 0.1, 0.3]))
    np.testing.assert_allclose(out["pearson_offdiag_p_random_init"].to_numpy()[1:], [0.25, 0.5])
    # BH of max(p): [0.25, 0.6] -> [0.5, 0.6]
    np.testing.assert_allclose(out["pearson_offdiag_q"].to_numpy()[1:], [0.5, 0.6])
    assert np.isnan(out["pearson_offdiag_q"].iloc[0])


def test_random_init_like_keeps_the_architecture_and_the_global_random_state():
    model = random_model(0).double()
    state = torch.random.get_rng_state()
    fresh = random_init_like(model, seed=5)
    assert torch.equal(state, torch.random.get_rng_state())
    assert fresh.config == model.config and fresh.causal == model.causal
    assert next(fresh.parameters()).dtype == torch.float64
    assert not torch.equal(fresh.token_embedding.weight, model.token_embedding.weight)
    again = random_init_like(model, seed=5)
    assert torch.equal(again.token_embedding.weight, fresh.token_embedding.weight)
    with pytest.raises(ValueError, match=r"null_models needs a ProteinLanguageModel .*"
                                         r"got Linear; set null_models=0"):
        random_init_like(torch.nn.Linear(2, 2), seed=0)


def test_the_floor_stands_beside_every_headline():
    config = few_proteins(seed=0, null_models=2, permutations=20)
    config.methods = ["similarity", "vig", "embedding"]
    result = analyze_model(random_model(0), config)
    summary = result.summary
    assert summary["random_init"]["models"] == 2 and summary["random_init"]["seeds"] == [1, 2]
    assert len(summary["random_init"]["best_head_r"]) == 2
    similarity = summary["similarity"]
    assert similarity["best_head_floor"] == pytest.approx(floor(
        summary["random_init"]["best_head_r"]))
    assert "pooled_floor" in similarity and "floor" in summary["embedding"]
    assert "random-initialised models" in similarity["calibration"]
    heads = result.head_table[result.head_table["kind"] == "head"]
    assert (heads["pearson_offdiag_q"] >= heads["pearson_offdiag_p_random_init"] - 1e-12).all()
    assert heads["pearson_offdiag_p_random_init"].min() >= 1 / (1 + 2 * 8) - 1e-12
    line = summary_line(result, "out")
    assert f"random-init floor {similarity['best_head_floor']:.3g}" in line
    assert "heads q<0.05" in line


@pytest.mark.slow
def test_random_models_are_not_called_significant():
    """30 random-initialised models on 6 short proteins: with the Mantel q alone (the old
    analysis) 7 of them had a head at q < 0.05 (and 10 % of heads a Mantel p < 0.05); the
    calibrated q calls at most 5 % of the heads -- and of the models -- significant."""
    models, heads, significant, models_with_any = 30, 0, 0, 0
    for seed in range(100, 100 + models):
        result = analyze_model(random_model(seed), few_proteins(seed, null_models=3))
        table = result.head_table[result.head_table["kind"] == "head"]
        called = int((table["pearson_offdiag_q"] < 0.05).sum())
        heads, significant = heads + len(table), significant + called
        models_with_any += called > 0
    assert significant / heads <= 0.05
    assert models_with_any / models <= 0.05
