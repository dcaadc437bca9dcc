"""ESM-2 from fair-esm .pt files and HF EsmForMaskedLM directories: the imported model gives
the source's logits (20 amino acids, padded batch, masked positions) and every layer's hidden
states (ESM's repr_layers: 0 = embeddings, the last after the final LayerNorm)."""

from __future__ import annotations

import pytest
import torch

from protperf.inference import load_model
from protperf.pretrained import import_pretrained
from tests.pretrained.conftest import (
    amino_acid_columns,
    batch,
    esm_vocab,
    fair_esm_file_data,
    fair_esm_model,
    perturb,
    residue_positions,
)

TOL = 1e-4  # float32, both sides
LAYERS = [0, 1, 2]


def our_outputs(checkpoint):
    model = load_model(checkpoint)
    _, ids, attention = batch(esm_vocab(), "<cls>", "<eos>", "<pad>", "<mask>")
    with torch.no_grad():
        return (model(ids, attention),
                model.representations(ids, LAYERS, attention_mask=attention), attention)


def assert_logits_equal(ours, theirs, attention):
    src_cols, our_cols = amino_acid_columns(esm_vocab())
    residues = residue_positions(attention)
    torch.testing.assert_close(ours[residues][:, our_cols], theirs[residues][:, src_cols],
                               rtol=0, atol=TOL)


def test_fair_esm_file_equals_the_source(fair_esm_file, tmp_path):
    path, source = fair_esm_file
    imported = import_pretrained(path, tmp_path / "esm.ckpt")
    assert imported.dropped_tokens == [".", "-", "<null_1>"]
    assert imported.unpredicted_tokens == []
    src, _, _ = batch(esm_vocab(), "<cls>", "<eos>", "<pad>", "<mask>")
    with torch.no_grad():
        theirs = source(src, repr_layers=LAYERS)
    logits, layers, attention = our_outputs(tmp_path / "esm.ckpt")
    assert_logits_equal(logits, theirs["logits"], attention)
    for layer in LAYERS:
        torch.testing.assert_close(layers[layer][attention],
                                   theirs["representations"][layer][attention], rtol=0, atol=TOL)


def test_the_test_file_is_what_fair_esm_reads(fair_esm_file):
    """fair-esm's own ESM-2 loader accepts the file the tests import (same names, config)."""
    from esm.pretrained import load_model_and_alphabet_core

    path, source = fair_esm_file
    data = torch.load(path, map_location="cpu", weights_only=False)  # our own test file
    model, _ = load_model_and_alphabet_core("esm2_t2_tiny", data)
    ids = torch.randint(4, 24, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(model(ids)["logits"], source(ids)["logits"], rtol=0, atol=0)


def test_token_dropout_matters_and_is_reproduced(tmp_path):
    """Masked inputs: the import reproduces fair-esm with and without token dropout, and the
    two differ (so the knob is exercised)."""
    outputs = {}
    for token_dropout in (True, False):
        source = fair_esm_model(token_dropout=token_dropout)
        path = tmp_path / f"esm_{token_dropout}.pt"
        torch.save(fair_esm_file_data(source), path)
        import_pretrained(path, tmp_path / f"esm_{token_dropout}.ckpt")
        src, _, _ = batch(esm_vocab(), "<cls>", "<eos>", "<pad>", "<mask>")
        with torch.no_grad():
            theirs = source(src)["logits"]
        logits, _, attention = our_outputs(tmp_path / f"esm_{token_dropout}.ckpt")
        assert_logits_equal(logits, theirs, attention)
        outputs[token_dropout] = logits
    assert not torch.allclose(outputs[True], outputs[False], atol=1e-2)


@pytest.mark.parametrize("variant", ["safetensors", "bin"])
def test_hf_esm_directory_equals_the_source(variant, hf_esm_dirs, tmp_path):
    from transformers import EsmForMaskedLM

    directory = hf_esm_dirs[variant]
    import_pretrained(directory, tmp_path / "esm.ckpt")
    source = EsmForMaskedLM.from_pretrained(hf_esm_dirs["safetensors"]).eval()
    src, _, attention = batch(esm_vocab(), "<cls>", "<eos>", "<pad>", "<mask>")
    with torch.no_grad():
        theirs = source(src, attention_mask=attention.long(), output_hidden_states=True)
    logits, layers, attention = our_outputs(tmp_path / "esm.ckpt")
    assert_logits_equal(logits, theirs.logits, attention)
    # transformers' hidden_states: the embeddings, then each block's output, the last one
    # after the final LayerNorm (ESM's repr_layers convention, and protperf's)
    hidden = theirs.hidden_states
    assert len(hidden) == len(LAYERS)
    for layer in LAYERS:
        torch.testing.assert_close(layers[layer][attention], hidden[layer][attention],
                                   rtol=0, atol=TOL)


def test_hf_esm_with_an_embedding_layer_norm(tmp_path):
    """``emb_layer_norm_before=True`` (and no token dropout) maps onto model.embedding_norm."""
    from transformers import EsmConfig, EsmForMaskedLM

    vocab = esm_vocab()
    torch.manual_seed(0)
    config = EsmConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
                       position_embedding_type="rotary", token_dropout=False,
                       emb_layer_norm_before=True, layer_norm_eps=1e-5,
                       mask_token_id=vocab.index("<mask>"), pad_token_id=vocab.index("<pad>"))
    source = perturb(EsmForMaskedLM(config), seed=4)
    source.save_pretrained(tmp_path / "esm")
    (tmp_path / "esm" / "vocab.txt").write_text("\n".join(vocab) + "\n")
    imported = import_pretrained(tmp_path / "esm", tmp_path / "esm.ckpt")
    assert imported.config.embedding_norm and not imported.config.token_dropout
    src, _, attention = batch(vocab, "<cls>", "<eos>", "<pad>", "<mask>")
    with torch.no_grad():
        theirs = source(src, attention_mask=attention.long()).logits
    logits, _, attention = our_outputs(tmp_path / "esm.ckpt")
    assert_logits_equal(logits, theirs, attention)
