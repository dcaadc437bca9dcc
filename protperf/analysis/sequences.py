"""Proteins to analyze: read from a FASTA file or a prepared split, batched for the model.

Every protein read is either analyzed or counted under a named reason in a ``Counter``
(``skipped_invalid``, ``skipped_empty``); cropping is counted too (``truncated`` proteins and
``residues_cropped``).  Batches carry ``<cls> residues <eos>``, like training.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from protperf.data.alphabet import Alphabet

ALPHABET = Alphabet()


@dataclass
class Protein:
    """One protein: record id and residue token ids (no special tokens), uint8 (n,)."""

    record_id: str
    residues: np.ndarray


@dataclass
class Batch:
    """record_ids: the proteins in the batch (several per row when windows are packed);
    tokens: (B, L) int64; attention_mask: (B, L) bool."""

    record_ids: list[str]
    tokens: torch.Tensor
    attention_mask: torch.Tensor


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
        from protperf.data.shards import PreparedSplit

        prepared = PreparedSplit(path, split)
        for index, record_id in enumerate(prepared.ids()):
            stats["read"] += 1
            yield Protein(record_id, np.asarray(prepared[index]))
        return
    from protperf.data.fasta import read_fasta

    for record_id, text in read_fasta(path):
        stats["read"] += 1
        text = text[:-1] if text.endswith("*") else text  # one trailing stop codon, as prepare
        try:
            tokens = ALPHABET.encode(text)
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


def _pad(rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(r) for r in rows)
    tokens = torch.full((len(rows), length), ALPHABET.pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.from_numpy(row.astype(np.int64))
        mask[i, : len(row)] = True
    return tokens, mask


def with_specials(residues: np.ndarray) -> np.ndarray:
    """(n,) residues -> (n + 2,) ``<cls> residues <eos>`` as int64."""
    return np.concatenate(([ALPHABET.cls_id], residues.astype(np.int64), [ALPHABET.eos_id]))


def protein_batches(
    proteins: Iterable[Protein], batch_size: int, max_length: int, stats: Counter | None = None
) -> Iterator[Batch]:
    """One protein per row, cropped to ``max_length`` tokens (with <cls>/<eos>), right-padded."""
    if batch_size < 1 or max_length < 3:
        raise ValueError(
            f"need batch_size >= 1 and max_length >= 3, got {batch_size} and {max_length}"
        )
    stats = Counter() if stats is None else stats
    ids, rows = [], []
    for protein in proteins:
        residues = protein.residues
        if len(residues) > max_length - 2:
            stats["truncated"] += 1
            stats["residues_cropped"] += len(residues) - (max_length - 2)
            residues = residues[: max_length - 2]
        ids.append(protein.record_id)
        rows.append(with_specials(residues))
        stats["analyzed"] += 1
        if len(rows) == batch_size:
            yield Batch(ids, *_pad(rows))
            ids, rows = [], []
    if rows:
        yield Batch(ids, *_pad(rows))


def window_batches(
    proteins: Iterable[Protein], batch_size: int, window: int, stats: Counter | None = None
) -> Iterator[Batch]:
    """Proteins packed back to back (``<cls> a <eos> <cls> b <eos> ...``) into rows of
    ``window`` tokens -- long-context analysis; a protein may continue in the next row."""
    if batch_size < 1 or window < 3:
        raise ValueError(f"need batch_size >= 1 and window >= 3, got {batch_size}, {window}")
    stats = Counter() if stats is None else stats
    buffer: list[np.ndarray] = []
    buffered, ids, rows = 0, [], []
    for protein in proteins:
        stats["analyzed"] += 1
        ids.append(protein.record_id)
        buffer.append(with_specials(protein.residues))
        buffered += len(buffer[-1])
        while buffered >= window:
            stream = np.concatenate(buffer)
            rows.append(stream[:window])
            buffer, buffered = [stream[window:]], len(stream) - window
            if len(rows) == batch_size:
                yield Batch(ids, *_pad(rows))
                ids, rows = [], []
    if buffered:
        rows.append(np.concatenate(buffer))
    if rows:
        yield Batch(ids, *_pad(rows))
