"""HF BERT masked LMs imported into protperf give the source's logits and hidden states."""

from __future__ import annotations

import logging

import pytest
import torch

from protperf.inference import load_model
from protperf.pretrained import import_pretrained
from tests.pretrained.conftest import (
    BERT_VOCAB,
    A,
    amino_acid_columns,
    batch,
    residue_positions,
)

TOL = 1e-4  # float32, both sides


def source_outputs(directory):
    from transformers import BertForMaskedLM

    model = BertForMaskedLM.from_pretrained(directory).eval()
    src, ours, attention = batch(BERT_VOCAB, "[CLS]", "[SEP]", "[PAD]", "[MASK]")
    with torch.no_grad():
        out = model(src, attention_mask=attention.long(), output_hidden_states=True)
    return out, ours, attention


@pytest.mark.parametrize("variant", ["safetensors", "bin"])
def test_logits_and_hidden_states_equal_the_source(variant, bert_dir, bert_bin_dir, tmp_path):
    directory = bert_dir if variant == "safetensors" else bert_bin_dir
    import_pretrained(directory, tmp_path / "bert.ckpt")
    model = load_model(tmp_path / "bert.ckpt")
    out, ids, attention = source_outputs(directory)
    src_cols, our_cols = amino_acid_columns(BERT_VOCAB)
    residues = residue_positions(attention)
    with torch.no_grad():
        logits = model(ids, attention)
        layers = model.representations(ids, list(range(3)), attention_mask=attention)
    torch.testing.assert_close(logits[residues][:, our_cols], out.logits[residues][:, src_cols],
                               rtol=0, atol=TOL)
    assert len(out.hidden_states) == 3  # embeddings, block 1, block 2 (BERT: no final norm)
    for layer, hidden in enumerate(out.hidden_states):
        torch.testing.assert_close(layers[layer][attention], hidden[attention], rtol=0, atol=TOL)


def test_vocabulary_is_mapped_by_symbol(bert_dir, tmp_path):
    imported = import_pretrained(bert_dir, tmp_path / "bert.ckpt")
    assert imported.unpredicted_tokens == []  # ProtBert-like: every protperf token present
    assert imported.dropped_tokens == ["[unused1]"]


def test_tokens_the_source_lacks_are_never_predicted(bert_dir, tmp_path):
    """A vocabulary without X, B, Z, U, O (as AntiBERTy's): those protperf tokens get no
    probability, so argmax and sampling never produce them; as inputs they embed as [UNK]."""
    lacking = [t if t not in "XBZUO" else f"[unused{t}]" for t in BERT_VOCAB]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(lacking) + "\n")
    imported = import_pretrained(bert_dir, tmp_path / "bert.ckpt", vocab=vocab)
    assert imported.unpredicted_tokens == list("XBZUO")
    model = load_model(tmp_path / "bert.ckpt")
    rare = torch.tensor([A.tokens.index(t) for t in "XBZUO"])
    _, ids, attention = source_outputs(bert_dir)
    with torch.no_grad():
        logits = model(ids, attention)
    probabilities = logits.softmax(-1)
    assert probabilities[..., rare].max() == 0.0
    assert not torch.isin(logits.argmax(-1), rare).any()
    draws = torch.multinomial(probabilities.flatten(0, 1), 500, replacement=True,
                              generator=torch.Generator().manual_seed(0))
    assert not torch.isin(draws, rare).any()
    weight = model.token_embedding.weight
    torch.testing.assert_close(weight[rare], weight[A.unk_id].expand(5, -1), rtol=0, atol=0)


def test_extra_heads_are_ignored_and_named(bert_bin_dir, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="protperf.pretrained.importer"):
        imported = import_pretrained(bert_bin_dir, tmp_path / "bert.ckpt")
    assert imported.ignored == ["bert.pooler.*", "cls.species.*"]
    lines = [r.getMessage() for r in caplog.records if "not imported" in r.getMessage()]
    assert lines == ["source tensors not imported (not part of the masked LM): bert.pooler.*, "
                     "cls.species.*"]
    assert imported.config.norm_placement == "post" and imported.config.embedding_norm
    assert not imported.config.final_norm and imported.config.tie_embeddings
