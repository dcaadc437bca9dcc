"""Batching proteins for analysis: specials added, cropping and packing counted."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from protperf.analysis.sequences import Protein, protein_batches, window_batches

from .conftest import ALPHABET, encode

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
