"""Embeddings: batching/padding invariance, any length for Performers, the crop policy of
learned positions, and the output files' round trip."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from protperf.errors import ConfigError, InferenceInputError
from protperf.inference.embed import Embedder, length_batches
from protperf.inference.embed_io import EmbeddingWriter, load_embedding, load_means, read_index
from tests.inference.conftest import tiny_model

RECORDS = [("short", "MKV"), ("mid", "ACDEFGHIKLMNPQRSTVWY" * 2), ("one", "W"),
           ("long", "MKTAYIAKQRQISFVKSHFSRQ" * 4)]
# float32 models: a protein alone and in a padded batch agree to this (sums in other orders)
TOL = 1e-5


@pytest.mark.parametrize("kind", ["favor_softmax", "favor_relu", "exact"])
@pytest.mark.parametrize("causal", [False, True])
def test_embedding_is_the_same_alone_or_batched(kind, causal):
    model = tiny_model(kind, causal=causal, position="learned", dtype=torch.float32,
                       weight_scale=2.0)
    batched = Embedder(model, layers=[0, 1, -1], include=["mean", "per_tok"],
                       toks_per_batch=10_000)
    assert len(length_batches([len(s) + 2 for _, s in RECORDS], 10_000)) == 1  # one batch
    together = list(batched.embed(RECORDS))
    assert [e.record_id for e in together] == [r for r, _ in RECORDS]  # input order
    for (record_id, residues), emb in zip(RECORDS, together, strict=True):
        alone = batched.embed_one(residues, record_id)
        assert emb.per_tok[2].shape == (len(residues), 32)
        for layer in (0, 1, 2):
            np.testing.assert_allclose(emb.mean[layer], alone.mean[layer], rtol=0, atol=TOL)
            np.testing.assert_allclose(emb.per_tok[layer], alone.per_tok[layer], rtol=0,
                                       atol=TOL)
        np.testing.assert_allclose(emb.mean[2], emb.per_tok[2].mean(0), rtol=0, atol=1e-6)


def test_length_batches_respect_the_token_budget():
    lengths = [5, 50, 20, 20, 3, 60]
    batches = length_batches(lengths, 60)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 60
    assert batches[0] == [5]  # longest first, alone at the budget


def test_performer_embeds_a_5000_residue_protein_in_one_pass():
    model = tiny_model("favor_relu", causal=False, position="rotary", dtype=torch.float32,
                       weight_scale=1.0)
    residues = "".join(np.random.default_rng(0).choice(list("ACDEFGHIKLMNPQRSTVWY"), 5000))
    emb = Embedder(model, include=["mean", "per_tok"]).embed_one(residues, "titin_piece")
    assert emb.embedded_length == emb.length == 5000
    assert emb.per_tok[2].shape == (5000, 32) and np.isfinite(emb.per_tok[2]).all()
    short = Embedder(model, include=["per_tok"]).embed_one(residues[:100])
    assert not np.allclose(short.per_tok[2], emb.per_tok[2][:100], atol=1e-3)  # context used


def test_learned_positions_crop_with_a_warning_or_refuse(caplog):
    model = tiny_model("exact", causal=False, position="learned", max_position=32,
                       dtype=torch.float32)
    with caplog.at_level(logging.WARNING, logger="protperf.inference.embed"):
        emb = Embedder(model, include=["per_tok"]).embed_one("A" * 50, "P12345")
    assert "P12345: 50 residues, embedding the first 30 (model.max_position=32)" in caplog.text
    assert (emb.length, emb.embedded_length) == (50, 30)
    assert emb.per_tok[2].shape == (30, 32)
    with pytest.raises(InferenceInputError, match=r"x.fasta: record P12345: 50 residues do not "
                       r"fit the learned positional table \(model.max_position=32\)"):
        next(Embedder(model, too_long="error").embed([("P12345", "A" * 50)], source="x.fasta"))


def test_bad_records_and_options_are_named():
    model = tiny_model(causal=False)
    with pytest.raises(InferenceInputError, match=r"in.fa: record bad: invalid residue '1'"):
        next(Embedder(model).embed([("bad", "MK1")], source="in.fa"))
    with pytest.raises(ConfigError, match=r"layers: layer 5 is out of range for a 2-layer"):
        Embedder(model, layers=[5])
    with pytest.raises(ConfigError, match=r"include: 'cls' is not one of mean, per_tok"):
        Embedder(model, include=["cls"])


@pytest.mark.parametrize("fmt", ["npy", "npz", "pt"])
def test_output_files_round_trip(tmp_path, fmt):
    model = tiny_model(causal=False, dtype=torch.float32)
    embeddings = list(Embedder(model, layers=[1, -1], include=["mean", "per_tok"]).embed(RECORDS))
    with EmbeddingWriter(tmp_path, fmt, proteins_per_file=3) as writer:
        for emb in embeddings:
            writer.write(emb)
    index = read_index(tmp_path)
    assert index["id"].tolist() == [r for r, _ in RECORDS]
    assert index["length"].tolist() == [len(s) for _, s in RECORDS]
    if fmt == "npy":
        assert index["file"].tolist() == ["chunk_00000"] * 3 + ["chunk_00001"]
        assert index["row"].tolist() == [0, 1, 2, 0]
    for (_, entry), emb in zip(index.iterrows(), embeddings, strict=True):
        for layer in (1, 2):
            np.testing.assert_array_equal(load_embedding(tmp_path, entry, f"mean_l{layer}"),
                                          emb.mean[layer])
            np.testing.assert_array_equal(load_embedding(tmp_path, entry, f"per_tok_l{layer}"),
                                          emb.per_tok[layer])
    _, means = load_means(tmp_path, 2)
    np.testing.assert_array_equal(means, np.stack([e.mean[2] for e in embeddings]))
