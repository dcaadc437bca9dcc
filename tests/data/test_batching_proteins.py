"""Proteins read one by one and batched (analysis, inference): specials, crop, packing counted."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from protperf.data.alphabet import ALPHABET
from protperf.data.batching import BatchConverter, protein_batches, window_batches
from protperf.data.proteins import Protein


def encode(text: str) -> list[int]:
    return ALPHABET.encode(text).tolist()

CLS, EOS, PAD = ALPHABET.cls_id, ALPHABET.eos_id, ALPHABET.pad_id


def proteins(*texts: str) -> list[Protein]:
    return [Protein(f"p{i}", np.array(encode(t), dtype=np.uint8)) for i, t in enumerate(texts)]


def test_protein_batches_add_specials_pad_and_crop():
    stats = Counter()
    batches = list(protein_batches(proteins("MKTAY", "AC", "WWWWWWWW"), 2, 6, stats))
    assert [b.record_ids for b in batches] == [["p0", "p1"], ["p2"]]
    first = batches[0]
    assert first.tokens[0].tolist() == [CLS] + encode("MKTA") + [EOS]
    assert first.tokens[1].tolist() == [CLS] + encode("AC") + [EOS, PAD, PAD]
    assert first.attention_mask.sum(1).tolist() == [6, 4]
    assert stats == Counter(analyzed=3, truncated=2, residues_cropped=1 + 4)
    with pytest.raises(ValueError, match="need batch_size >= 1 and max_length >= 3, got 0 and 6"):
        list(protein_batches(proteins("A"), 0, 6))


def test_batch_converter_strings_and_ids_give_the_same_padded_batch():
    tokens, mask = BatchConverter()(["MKV", "mkvla"])
    assert tokens.dtype == torch.int64 and mask.dtype == torch.bool
    assert tokens.tolist() == [[CLS] + encode("MKV") + [EOS, PAD, PAD],
                               [CLS] + encode("MKVLA") + [EOS]]
    assert mask.tolist() == [[True] * 5 + [False] * 2, [True] * 7]
    from_ids, _ = BatchConverter()([np.array(encode("MKV"), dtype=np.uint8),
                                    np.array(encode("MKVLA"), dtype=np.uint8)])
    assert torch.equal(from_ids, tokens)
    cropped, cropped_mask = BatchConverter(max_length=4)(["MKVLA", "M"])
    assert cropped.tolist() == [[CLS] + encode("MK") + [EOS], [CLS] + encode("M") + [EOS, PAD]]
    assert cropped_mask.sum(1).tolist() == [4, 3]
    with pytest.raises(ValueError, match="invalid residue '-' at position 2"):
        BatchConverter()(["MK-V"])
    with pytest.raises(ValueError, match="max_length must be >= 3 .bos, a residue, eos., got 2"):
        BatchConverter(max_length=2)


def test_window_batches_pack_every_token_once():
    stats = Counter()
    texts = ("MKTAY", "AC", "WWWWWWWW", "G")
    batches = list(window_batches(proteins(*texts), 2, 7, stats))
    rows = [
        row[mask].tolist()
        for b in batches
        for row, mask in zip(b.tokens, b.attention_mask, strict=True)
    ]
    assert all(len(r) == 7 for r in rows[:-1])
    stream = [t for r in rows for t in r]
    assert stream == [t for text in texts for t in [CLS] + encode(text) + [EOS]]
    assert stats["analyzed"] == 4
    assert batches[0].record_ids == ["p0", "p1", "p2"]


def test_read_proteins_from_fasta_and_prepared_split(tmp_path):
    from protperf.data.config import PrepareConfig
    from protperf.data.preparation.pipeline import prepare
    from protperf.data.proteins import read_proteins

    fasta = tmp_path / "small.fasta"
    fasta.write_text(">a desc\nMKTXAY*\n>b\nacdef\n>c\nGGW\n")
    stats = Counter()
    read = list(read_proteins(fasta, stats=stats))
    assert [p.record_id for p in read] == ["a", "b", "c"]
    assert read[0].residues.tolist() == encode("MKTXAY")  # stop codon stripped, X kept
    assert read[1].residues.tolist() == encode("ACDEF")  # lowercase accepted
    assert stats == Counter(read=3)
    prepare(fasta, tmp_path / "prepared", PrepareConfig(valid_fraction=0.0, test_fraction=0.0))
    prepared = {p.record_id: p.residues.tolist()
                for p in read_proteins(tmp_path / "prepared", split="train")}
    assert prepared == {p.record_id: p.residues.tolist() for p in read}
    with pytest.raises(ValueError, match="on_invalid must be 'error' or 'skip', got 'drop'"):
        list(read_proteins(fasta, on_invalid="drop"))
