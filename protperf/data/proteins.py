"""Proteins read one by one, for analysis and inference: a FASTA file or a prepared split.

Every protein read is either yielded or counted under a named reason in a ``Counter``
(``skipped_invalid``, ``skipped_empty``). Records are encoded with the rule of the
preparation (:mod:`protperf.data.preparation.chunk`): one trailing stop codon ``*`` is
dropped, any other character outside the alphabet is invalid.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protperf.data.alphabet import ALPHABET
from protperf.data.fasta import read_fasta
from protperf.data.shards import PreparedSplit


def encode_protein(text: str) -> np.ndarray:
    """One FASTA record's sequence -> residue token ids (n,) uint8, as prepared shards hold them.

    Raises ValueError (naming the character and position) for characters outside the alphabet.
    """
    return ALPHABET.encode(text[:-1] if text.endswith("*") else text)


@dataclass
class Protein:
    """One protein: record id and residue token ids (no special tokens), uint8 (n,)."""

    record_id: str
    residues: np.ndarray


def read_proteins(
    path: str | Path,
    split: str = "test",
    on_invalid: str = "error",
    stats: Counter | None = None,
) -> Iterator[Protein]:
    """Stream proteins from a FASTA file (plain or .gz) or a prepared directory's ``split``.

    on_invalid: ``error`` (raise, naming file, record id and position) or ``skip`` (count).
    """
    stats = Counter() if stats is None else stats
    if on_invalid not in ("error", "skip"):
        raise ValueError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
    path = Path(path)
    if path.is_dir():
        prepared = PreparedSplit(path, split)
        for index, record_id in enumerate(prepared.ids()):
            stats["read"] += 1
            yield Protein(record_id, np.asarray(prepared[index]))
        return
    for record_id, text in read_fasta(path):
        stats["read"] += 1
        try:
            tokens = encode_protein(text)
        except ValueError as error:
            if on_invalid == "error":
                raise ValueError(
                    f"{path}: record {record_id}: {error} (set data.on_invalid=skip to skip and "
                    "count such records)"
                ) from None
            stats["skipped_invalid"] += 1
            continue
        if not len(tokens):
            stats["skipped_empty"] += 1
            continue
        yield Protein(record_id, tokens)
