"""Embedding similarity: cosine similarity of the amino-acid token embeddings vs BLOSUM62."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from protperf.analysis.config import AnalysisDataConfig, AnalyzeConfig
from protperf.analysis.controls import PlantedConfig, planted_module
from protperf.analysis.embedding import (
    amino_acid_embeddings,
    cosine_similarity,
    embedding_similarity,
)
from protperf.analysis.pipeline import analyze_model


def test_cosine_similarity_of_known_vectors():
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    cosine = cosine_similarity(vectors)
    np.testing.assert_allclose(cosine[:3, :3], [[1, 0, 0.5**0.5], [0, 1, 0.5**0.5],
                                                [0.5**0.5, 0.5**0.5, 1]], atol=1e-12)
    assert np.isnan(cosine[3]).all()  # a zero vector has no direction


def test_embedding_rows_follow_the_amino_acid_order():
    model = planted_module(PlantedConfig()).model
    rows = amino_acid_embeddings(model)
    weight = model.token_embedding.weight.detach().double().numpy()
    np.testing.assert_array_equal(rows[0], weight[5])  # A is token id 5
    np.testing.assert_array_equal(rows[19], weight[24])  # Y is token id 24


def test_planted_embeddings_are_significant_and_shuffled_ones_are_not():
    model = planted_module(PlantedConfig()).model
    frame, summary = embedding_similarity(model, n_permutations=200, seed=0)
    assert list(frame.index) == list("ACDEFGHIKLMNPQRSTVWY")
    assert summary["pearson_offdiag"] == pytest.approx(1.0, abs=1e-6)
    assert summary["pearson_offdiag_p"] == pytest.approx(1 / 201)
    weight = model.token_embedding.weight.data
    weight[5:25] = weight[5:25][np.random.default_rng(3).permutation(20)]
    _, shuffled = embedding_similarity(model, n_permutations=200, seed=0)
    assert shuffled["pearson_offdiag_p"] > 0.05


def test_model_without_token_embedding_is_named():
    with pytest.raises(ValueError, match="Linear has no token_embedding"):
        amino_acid_embeddings(nn.Linear(2, 2))


def test_embedding_only_analysis_skips_the_attention_pass():
    model = planted_module(PlantedConfig()).model
    config = AnalyzeConfig(methods=["embedding"], permutations=50, progress=False,
                           data=AnalysisDataConfig(max_sequences=8, max_length=64, batch_size=2))
    result = analyze_model(model, config)
    assert result.totals is None and result.head_table is None
    assert "similarity" not in result.summary and "vig" not in result.summary
    assert result.summary["embedding"]["pearson_offdiag"] == pytest.approx(1.0, abs=1e-6)
    assert result.summary["data"]["stats"]["analyzed"] == 2  # one batch: the grid's protein
