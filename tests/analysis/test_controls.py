"""Planted positive controls: the analysis recovers BLOSUM62 when it is there, and only then.

Every analysis goes through a saved checkpoint and the configuration ``scripts/analyze.py``
composes (``compose_config("analyze", ...)`` + ``load_config`` + ``analyze``), on 8
proteins of the bundled sample cropped to 256 tokens, with fixed seeds (model seed 0,
permutation seed 0).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protperf.analysis.blosum import blosum62, triangle_indices
from protperf.analysis.controls import (
    PlantedConfig,
    planted_matrix,
    planted_module,
    save_checkpoint,
    save_planted_checkpoint,
)
from protperf.analysis.embedding import amino_acid_embeddings, cosine_similarity
from protperf.analysis.report import analyze
from protperf.analysis.residues import ALPHABET, AMINO_ACIDS, NUM_AMINO_ACIDS
from protperf.checkpoint.module import load_module
from protperf.cli.compose import compose_config
from protperf.cli.registry import load_config

DATA = ["data.max_sequences=8", "data.max_length=256", "permutations=200", "figures=false",
        "progress=false", "null_models=0"]


def expected_logits(config: PlantedConfig, residues: str, head: int = 0) -> np.ndarray:
    """The residue part of the planted logits for a string of amino acids (no noise):
    beta * P[a_i, a_j] + gamma * B[c_h, a_j], (L, L), P = ``planted_matrix``."""
    matrix, pairs = blosum62().to_numpy(), planted_matrix(config.plant_diagonal)
    index = [AMINO_ACIDS.index(a) for a in residues]
    prototype = head % NUM_AMINO_ACIDS
    return (config.beta * pairs[np.ix_(index, index)]
            + config.gamma * matrix[prototype, index][None, :])


def run(checkpoint, tmp_path, *overrides: str) -> dict:
    config = load_config("analyze", compose_config("analyze", [
        f"checkpoint={checkpoint}", f"output_dir={tmp_path / 'out'}", *DATA, *overrides]))
    return analyze(config).summary


def planted(tmp_path, **values) -> str:
    return str(save_planted_checkpoint(PlantedConfig(**values), tmp_path / "planted.ckpt"))


def layer_logits(model, residues: str) -> torch.Tensor:
    ids = torch.tensor([[ALPHABET.tokens.index(c) for c in residues]])
    x = model.token_embedding(ids) + model.position_embedding(torch.arange(len(residues)))
    q, k, _ = model.blocks[0].attn.project(model.blocks[0].attn_norm(x))
    return (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5)[0].detach()


@pytest.mark.parametrize("plant_diagonal", [True, False])
def test_planted_logits_are_beta_blosum_plus_key_preference(plant_diagonal):
    config = PlantedConfig(beta=0.7, gamma=0.4, sigma=0.0, plant_diagonal=plant_diagonal)
    model = planted_module(config).model
    residues = "ACDEFGHIKLMNPQRSTVWYWWCA"
    logits = layer_logits(model, residues)
    for head in range(config.num_heads):
        expected = torch.from_numpy(expected_logits(config, residues, head)).float()
        torch.testing.assert_close(logits[head], expected, atol=1e-4, rtol=0)


def test_positional_noise_has_the_stated_size_and_no_residue_part():
    config = PlantedConfig(beta=0.0, gamma=0.0, sigma=1.0)
    logits = layer_logits(planted_module(config).model, "A" * 200)
    assert 0.5 < float(logits.std()) < 2.0  # a rank-2 random form: std about sigma
    logits_other = layer_logits(planted_module(config).model, "W" * 200)
    torch.testing.assert_close(logits, logits_other, atol=1e-4, rtol=0)


def test_planted_embeddings_have_blosum_cosines_off_the_diagonal():
    model = planted_module(PlantedConfig()).model
    cosine = cosine_similarity(amino_acid_embeddings(model))
    rows, cols = triangle_indices(20, "offdiag")
    x, reference = cosine[rows, cols], blosum62().to_numpy()[rows, cols]
    scale = (x @ reference) / (reference @ reference)
    assert scale > 0
    np.testing.assert_allclose(x, scale * reference, atol=1e-6)  # B / const (float32 weights)


def test_planted_checkpoint_round_trips_through_load_module(tmp_path):
    module = planted_module(PlantedConfig(attention_kind="favor_softmax", num_features=64))
    path = save_checkpoint(module, tmp_path / "p.ckpt", global_step=7)
    loaded = load_module(path)
    assert loaded.model_config.attention.kind == "favor_softmax"
    for key, value in module.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, atol=0, rtol=0)


def test_exact_attention_recovers_blosum_at_beta_0_3(tmp_path):
    summary = run(planted(tmp_path, beta=0.3), tmp_path)
    pooled = summary["similarity"]["pooled"]
    assert pooled["pearson_offdiag"] >= 0.9
    assert pooled["pearson_offdiag_p"] == pytest.approx(1 / 201)
    assert summary["embedding"]["pearson_offdiag"] == pytest.approx(1.0, abs=1e-9)


def test_favor_softmax_m256_recovers_off_diagonal_blosum(tmp_path):
    checkpoint = planted(tmp_path, beta=0.3, plant_diagonal=False,
                         attention_kind="favor_softmax", num_features=256)
    summary = run(checkpoint, tmp_path, "methods=[similarity]")
    assert summary["model"]["attention"] == ["favor_softmax"]
    pooled = summary["similarity"]["pooled"]
    assert pooled["pearson_offdiag"] >= 0.8
    assert pooled["pearson_offdiag_p"] <= 0.01


def test_favor_relu_override_of_exact_weights_keeps_the_signal(tmp_path):
    summary = run(planted(tmp_path, beta=0.3), tmp_path, "model.attention.kind=favor_relu",
                  "model.attention.num_features=256", "methods=[similarity]")
    assert summary["model"]["attention"] == ["favor_relu"]
    assert summary["similarity"]["pooled"]["pearson_offdiag"] >= 0.7


def test_positional_only_model_is_null(tmp_path):
    # strong rank-8 positional noise: every head has weights above the Vig threshold
    checkpoint = planted(tmp_path, beta=0.0, gamma=0.0, sigma=2.0, position_rank=8, num_heads=20)
    summary = run(checkpoint, tmp_path)
    assert summary["similarity"]["pooled"]["pearson_offdiag_p"] > 0.05
    assert summary["vig"]["heads_used"] == 20
    assert summary["vig"]["pearson_offdiag_p"] > 0.05


def test_random_model_is_null_for_all_three_methods(tmp_path):
    random_init = planted_module(PlantedConfig())  # only to get the architecture
    from protperf.model.lightning import ProteinLMModule

    torch.manual_seed(0)
    module = ProteinLMModule(model=dict(random_init.hparams["model"]),
                             task=dict(random_init.hparams["task"]), seed=0)
    path = save_checkpoint(module, tmp_path / "random.ckpt")
    summary = run(path, tmp_path)
    assert summary["similarity"]["pooled"]["pearson_offdiag_p"] > 0.05
    assert summary["embedding"]["pearson_offdiag_p"] > 0.05


def test_vig_method_with_20_heads_sees_the_key_preference(tmp_path):
    checkpoint = planted(tmp_path, beta=0.0, gamma=0.5, sigma=2.0, position_rank=8,
                         num_heads=20)
    vig = run(checkpoint, tmp_path, "methods=[vig]")["vig"]
    assert vig["heads_used"] == 20
    assert vig["pearson_offdiag"] >= 0.5
    assert vig["pearson_offdiag_p"] <= 0.01
