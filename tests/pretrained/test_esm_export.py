"""``protperf-export --format esm``: an exact-attention model of ESM-2's architecture becomes an
HF ``EsmForMaskedLM`` directory that transformers loads (locally) with equal logits; other
architectures are refused in one line naming the config key."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from protperf import export_model
from protperf.attention import AttentionConfig
from protperf.data.alphabet import Alphabet
from protperf.errors import ConfigError
from protperf.inference import load_model
from protperf.model.config import ModelConfig
from protperf.model.transformer import ProteinLanguageModel
from tests.inference.test_export import padded_batch, save_checkpoint

transformers = pytest.importorskip("transformers")

ESM2_TINY = ModelConfig(
    name="esm2-tiny", dim=32, num_heads=4, num_layers=2, ffn_dim=64, dropout=0.0,
    position="rotary", max_position=1026, layer_norm_eps=1e-5, norm_placement="pre",
    final_norm=True, lm_head_transform=True, token_dropout=True,
    attention=AttentionConfig(kind="exact", num_features=32))


def random_model(config: ModelConfig, seed: int = 0) -> ProteinLanguageModel:
    """Every parameter (LayerNorm scales and biases too) drawn at random, so that a misplaced
    tensor cannot go unnoticed."""
    torch.manual_seed(seed)
    network = ProteinLanguageModel(config, causal=False)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.normal_(0.0, 0.3)
    return network.eval()


def batch_with_masks() -> tuple[torch.Tensor, torch.Tensor]:
    """The padded batch of two proteins, with a <mask> in each (token dropout rescales)."""
    ids, mask = padded_batch()
    ids[0, 3] = ids[1, 2] = Alphabet().mask_id
    return ids, mask


def esm_logits(directory, ids, mask) -> torch.Tensor:
    hf_model = transformers.EsmForMaskedLM.from_pretrained(directory, local_files_only=True)
    with torch.no_grad():
        return hf_model.eval()(input_ids=ids, attention_mask=mask.long()).logits


def assert_equal_amino_acid_logits(expected, actual, mask) -> None:
    """The raw logits of the 20 amino acids at every real position, within 1e-4."""
    amino_acids = Alphabet().standard_ids
    torch.testing.assert_close(actual[mask][:, amino_acids], expected[mask][:, amino_acids],
                               rtol=0, atol=1e-4)


@pytest.mark.parametrize("knobs", [{}, {"tie_embeddings": False, "embedding_norm": True,
                                         "token_dropout": False}], ids=["esm2", "variant"])
def test_transformers_loads_the_export_with_equal_logits(tmp_path, knobs):
    network = random_model(dataclasses.replace(ESM2_TINY, **knobs))
    checkpoint = save_checkpoint(network, tmp_path / "model.ckpt")
    directory = export_model(checkpoint, tmp_path / "esm", format="esm")
    ids, mask = batch_with_masks()
    with torch.no_grad():
        expected = load_model(checkpoint)(ids, mask)
    assert_equal_amino_acid_logits(expected, esm_logits(directory, ids, mask), mask)


def test_the_saved_tokenizer_encodes_with_protperf_ids(tmp_path):
    checkpoint = save_checkpoint(random_model(ESM2_TINY), tmp_path / "model.ckpt")
    directory = export_model(checkpoint, tmp_path / "esm", format="esm")
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
    encoded = tokenizer(["MKTAYIA", "QRQI"], padding=True, return_tensors="pt")
    ids, mask = padded_batch()
    assert torch.equal(encoded["input_ids"], ids)
    assert torch.equal(encoded["attention_mask"].bool(), mask)
    assert tokenizer.convert_ids_to_tokens(list(range(6))) == [
        "<pad>", "<mask>", "<cls>", "<eos>", "<unk>", "A"]
    assert "library_name: transformers" in (directory / "README.md").read_text()


def test_the_export_imports_back_unchanged(tmp_path):
    """protperf-import reads what protperf-export wrote: the same logits (within 1e-5)."""
    from protperf.pretrained import import_pretrained

    network = random_model(ESM2_TINY)
    checkpoint = save_checkpoint(network, tmp_path / "model.ckpt")
    directory = export_model(checkpoint, tmp_path / "esm", format="esm")
    imported = tmp_path / "imported.ckpt"
    import_pretrained(directory, imported)
    ids, mask = batch_with_masks()
    with torch.no_grad():
        before, after = load_model(checkpoint)(ids, mask), load_model(imported)(ids, mask)
    assert_equal_amino_acid_logits(before, after, mask)


@pytest.mark.parametrize("knobs, reason", [
    ({"position": "learned"},
     r"model.position='learned' \(ESM-2 uses rotary positions\)"),
    ({"norm_placement": "post"},
     r"model.norm_placement='post' \(ESM-2 is pre-LayerNorm\)"),
    ({"lm_head_transform": False, "final_norm": False},
     r"model.final_norm=False \(ESM-2 ends in a LayerNorm\); model.lm_head_transform=False"),
    ({"attention": AttentionConfig(kind="identity")},
     r"model.attention.kind='identity' \(transformers runs exact or, through protperf.hf, "
     r"Performer attention; --as-exact writes these weights for exact\)"),
])
def test_other_architectures_are_refused_naming_the_key(tmp_path, knobs, reason):
    checkpoint = save_checkpoint(random_model(dataclasses.replace(ESM2_TINY, **knobs)),
                                 tmp_path / "model.ckpt")
    with pytest.raises(ConfigError, match=r"^checkpoint .*model.ckpt cannot be exported as "
                                          r"EsmForMaskedLM: .*" + reason):
        export_model(checkpoint, tmp_path / "esm", format="esm")
    assert not (tmp_path / "esm").exists()


def test_a_causal_model_is_refused(tmp_path):
    checkpoint = save_checkpoint(random_model(ESM2_TINY), tmp_path / "model.ckpt",
                                 objective="clm")
    with pytest.raises(ConfigError, match=r"task.objective='clm' \(EsmForMaskedLM is a masked"):
        export_model(checkpoint, tmp_path / "esm", format="esm")


def test_a_performer_exports_as_exact_only_when_asked(tmp_path):
    performer = dataclasses.replace(ESM2_TINY, attention=AttentionConfig(kind="favor_softmax"))
    checkpoint = save_checkpoint(random_model(performer), tmp_path / "model.ckpt")
    directory = export_model(checkpoint, tmp_path / "esm", format="esm", as_exact=True)
    ids, mask = batch_with_masks()
    exact = load_model(checkpoint, model_overrides={"attention": {"kind": "exact"}})
    with torch.no_grad():
        expected = exact(ids, mask)
        performer_logits = load_model(checkpoint)(ids, mask)
    actual = esm_logits(directory, ids, mask)
    assert_equal_amino_acid_logits(expected, actual, mask)
    assert not np.allclose(performer_logits[mask].numpy(), actual[mask].numpy(), atol=1e-4)
