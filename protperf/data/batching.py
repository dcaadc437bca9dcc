"""One way from proteins to model inputs: specials, crop, padding, key mask.

:class:`BatchConverter` (ESM's ``BatchConverter`` is the model) turns sequences -- residue
strings or residue ids -- into one padded batch; embedding, scoring and analysis use it, and
the training collators (:mod:`protperf.data.collate`) pad with the same :func:`pad_tokens` and
:func:`key_mask`.  Every batch holds
    ``tokens`` / ``input_ids`` (B, L) int64, ``<cls> residues <eos>`` per protein, right-padded
    ``attention_mask``         (B, L) bool, True at real (non-pad) tokens (:func:`key_mask`)
and, in training, ``labels`` (B, L) int64 with :data:`IGNORE_INDEX` where no loss is taken.

Two crops: :func:`crop_protein` cuts a window of ``bos residues eos`` (training: a random
offset; evaluation: offset 0, the same window every time) and :func:`truncate_residues`
keeps both specials and the first residues (analysis and inference of one protein).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from protperf.data.alphabet import ALPHABET
from protperf.data.proteins import Protein

#: Label of positions that take no loss (``cross_entropy(ignore_index=...)``).
IGNORE_INDEX = -100


def key_mask(tokens: torch.Tensor) -> torch.Tensor:
    """The one key-mask rule: (B, L) tokens -> (B, L) bool, True at every non-pad token."""
    return tokens != ALPHABET.pad_id


def segment_ids_from_bos(tokens: torch.Tensor, bos_id: int = ALPHABET.bos_id) -> torch.Tensor:
    """(B, L) token ids -> (B, L) int64 segment ids: a new segment starts at every bos.

    Positions before the first bos of a row belong to segment 0, the first bos opens segment 1
    (or segment 0 when the row starts with bos), so ids count bos tokens seen so far.
    """
    starts = (tokens == bos_id).to(torch.int64)
    ids = starts.cumsum(dim=-1)
    # a row that starts with bos opens segment 0 rather than 1 (ids are only compared)
    return ids - starts[:, :1]


def with_specials(residues: np.ndarray) -> np.ndarray:
    """(n,) residues -> (n + 2,) ``<cls> residues <eos>`` as int64 (``<cls>`` is ``<bos>``)."""
    return np.concatenate(([ALPHABET.bos_id], residues.astype(np.int64), [ALPHABET.eos_id]))


def crop_protein(
    residues: np.ndarray, max_length: int, rng: np.random.Generator | None
) -> np.ndarray:
    """bos + residues + eos, cropped to ``max_length`` tokens.

    ``residues: (n,)`` -> ``(min(n + 2, max_length),)`` int64.  A protein that does not fit is
    cut to a window of the full ``[bos, residues, eos]`` sequence at a uniformly random offset
    (``rng`` given, training) or at offset 0 (``rng=None``, evaluation): a window keeps bos only
    if it starts at the protein's start and eos only if it reaches its end.
    """
    total = len(residues) + 2
    start = 0
    if total > max_length and rng is not None:
        start = int(rng.integers(0, total - max_length + 1))
    return protein_window(residues, start, min(total, start + max_length))


def protein_window(residues: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Tokens ``start:stop`` of ``<cls> residues <eos>`` (``0 <= start < stop <= n + 2``) as
    ``(stop - start,)`` int64, without building the whole sequence: the window keeps bos only
    if ``start == 0`` and eos only if ``stop == n + 2``."""
    n = len(residues)
    out = np.empty(stop - start, dtype=np.int64)
    # full-sequence coordinates: 0 = bos, 1..n = residues, n + 1 = eos
    lo, hi = max(start, 1), min(stop, n + 1)
    out[lo - start : hi - start] = residues[lo - 1 : hi - 1]
    if start == 0:
        out[0] = ALPHABET.bos_id
    if stop == n + 2:
        out[-1] = ALPHABET.eos_id
    return out


def truncate_residues(residues: np.ndarray, max_length: int) -> np.ndarray:
    """``bos + residues[:max_length - 2] + eos``: (min(n + 2, max_length),) int64."""
    if max_length < 3:
        raise ValueError(f"max_length must be >= 3 (bos, a residue, eos), got {max_length}")
    return with_specials(residues[: max_length - 2])


def pad_tokens(examples: Sequence[torch.Tensor]) -> torch.Tensor:
    """``examples``: list of ``(L_i,)`` int64 -> ``(B, max L_i)`` right-padded with ``<pad>``."""
    if not len(examples):
        raise ValueError("cannot collate an empty batch")
    return torch.nn.utils.rnn.pad_sequence(list(examples), batch_first=True,
                                           padding_value=ALPHABET.pad_id)


class BatchConverter:
    """Sequences -> ``(tokens, attention_mask)``: (B, L) int64 and (B, L) bool.

    Each sequence -- a residue string (encoded by :meth:`Alphabet.encode`, which raises
    ``ValueError`` naming an invalid character) or residue ids ``(n,)`` -- becomes
    ``<cls> residues <eos>``; with ``max_length``, a longer one keeps its first
    ``max_length - 2`` residues (:func:`truncate_residues`).  Rows are right-padded with
    ``<pad>``, and the mask is :func:`key_mask`::

        tokens, mask = BatchConverter()(["MKV", "MKVLA"])  # (2, 7) int64, (2, 7) bool
    """

    def __init__(self, max_length: int | None = None) -> None:
        if max_length is not None and max_length < 3:
            raise ValueError(f"max_length must be >= 3 (bos, a residue, eos), got {max_length}")
        self.max_length = max_length

    def encode(self, sequence: str | np.ndarray) -> np.ndarray:
        """One sequence -> its row ``(min(n + 2, max_length),)`` int64."""
        residues = ALPHABET.encode(sequence) if isinstance(sequence, str) else sequence
        if self.max_length is None:
            return with_specials(residues)
        return truncate_residues(residues, self.max_length)

    @staticmethod
    def pad(rows: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token rows of any length -> right-padded (B, L) int64 tokens and their key mask."""
        tokens = pad_tokens([r if isinstance(r, torch.Tensor)
                             else torch.from_numpy(np.asarray(r, dtype=np.int64)) for r in rows])
        return tokens, key_mask(tokens)

    def __call__(self, sequences: Iterable[str | np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pad([self.encode(s) for s in sequences])


@dataclass
class Batch:
    """record_ids: the proteins in the batch (several per row when windows are packed);
    tokens: (B, L) int64; attention_mask: (B, L) bool."""

    record_ids: list[str]
    tokens: torch.Tensor
    attention_mask: torch.Tensor


def protein_batches(
    proteins: Iterable[Protein], batch_size: int, max_length: int, stats: Counter | None = None
) -> Iterator[Batch]:
    """One protein per row, cropped to ``max_length`` tokens (with <cls>/<eos>), right-padded."""
    if batch_size < 1 or max_length < 3:
        raise ValueError(
            f"need batch_size >= 1 and max_length >= 3, got {batch_size} and {max_length}"
        )
    converter = BatchConverter(max_length)
    stats = Counter() if stats is None else stats
    ids, rows = [], []
    for protein in proteins:
        residues = protein.residues
        if len(residues) > max_length - 2:
            stats["truncated"] += 1
            stats["residues_cropped"] += len(residues) - (max_length - 2)
        ids.append(protein.record_id)
        rows.append(converter.encode(residues))
        stats["analyzed"] += 1
        if len(rows) == batch_size:
            yield Batch(ids, *converter.pad(rows))
            ids, rows = [], []
    if rows:
        yield Batch(ids, *converter.pad(rows))


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
                yield Batch(ids, *BatchConverter.pad(rows))
                ids, rows = [], []
    if buffered:
        rows.append(np.concatenate(buffer))
    if rows:
        yield Batch(ids, *BatchConverter.pad(rows))
