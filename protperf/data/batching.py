"""One path from proteins to model batches: specials, crop, pad, masks, MLM / CLM labels.

Training (datasets + collators), evaluation, analysis and inference all build their batches
here. Every batch is a dict (training) or a :class:`Batch` (analysis / inference) of
    ``input_ids`` / ``tokens`` (B, L) int64
    ``labels``                 (B, L) int64, :data:`IGNORE_INDEX` where no loss is taken
    ``attention_mask``         (B, L) bool, True at real (non-pad) tokens (:func:`key_mask`)
    ``segment_ids``            (B, L) int64, only with ``data.cross_protein_attention=false``
so that for both objectives the loss is ``cross_entropy(logits.view(-1, V), labels.view(-1),
ignore_index=IGNORE_INDEX)`` with no further shifting.

Two crops: :func:`crop_protein` cuts a window of ``bos residues eos`` (training: a random
offset; evaluation: offset 0, the same window every time) and :func:`truncate_residues`
keeps both specials and the first residues (analysis and inference of one protein).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import get_worker_info

from protperf.data.alphabet import Alphabet
from protperf.data.proteins import Protein

#: Label of positions that take no loss (``cross_entropy(ignore_index=...)``).
IGNORE_INDEX = -100
ALPHABET = Alphabet()


def key_mask(tokens: torch.Tensor, alphabet: Alphabet = ALPHABET) -> torch.Tensor:
    """The one key-mask rule: (B, L) tokens -> (B, L) bool, True at every non-pad token."""
    return tokens != alphabet.pad_id


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
    n = len(residues)
    total = n + 2
    start = 0
    if total > max_length and rng is not None:
        start = int(rng.integers(0, total - max_length + 1))
    stop = min(total, start + max_length)
    out = np.empty(stop - start, dtype=np.int64)
    # full-sequence coordinates: 0 = bos, 1..n = residues, n + 1 = eos
    lo, hi = max(start, 1), min(stop, n + 1)
    out[lo - start : hi - start] = residues[lo - 1 : hi - 1]
    if start == 0:
        out[0] = ALPHABET.bos_id
    if stop == total:
        out[-1] = ALPHABET.eos_id
    return out


def truncate_residues(residues: np.ndarray, max_length: int) -> np.ndarray:
    """``bos + residues[:max_length - 2] + eos``: (min(n + 2, max_length),) int64."""
    if max_length < 3:
        raise ValueError(f"max_length must be >= 3 (bos, a residue, eos), got {max_length}")
    return with_specials(residues[: max_length - 2])


def pad_tokens(examples: list[torch.Tensor], pad_id: int = ALPHABET.pad_id) -> torch.Tensor:
    """``examples``: list of ``(L_i,)`` int64 -> ``(B, max L_i)`` right-padded with ``pad_id``."""
    if not examples:
        raise ValueError("cannot collate an empty batch")
    return torch.nn.utils.rnn.pad_sequence(examples, batch_first=True, padding_value=pad_id)


def pad_rows(rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows of any length -> right-padded (B, L) int64 tokens and their key mask."""
    tokens = pad_tokens([torch.from_numpy(np.asarray(r, dtype=np.int64)) for r in rows])
    return tokens, key_mask(tokens)


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
    stats = Counter() if stats is None else stats
    ids, rows = [], []
    for protein in proteins:
        residues = protein.residues
        if len(residues) > max_length - 2:
            stats["truncated"] += 1
            stats["residues_cropped"] += len(residues) - (max_length - 2)
        ids.append(protein.record_id)
        rows.append(truncate_residues(residues, max_length))
        stats["analyzed"] += 1
        if len(rows) == batch_size:
            yield Batch(ids, *pad_rows(rows))
            ids, rows = [], []
    if rows:
        yield Batch(ids, *pad_rows(rows))


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
                yield Batch(ids, *pad_rows(rows))
                ids, rows = [], []
    if buffered:
        rows.append(np.concatenate(buffer))
    if rows:
        yield Batch(ids, *pad_rows(rows))


class MLMCollator:
    """Masked LM (BERT/ESM recipe).

    Each residue token (id >= ``num_special``; never pad, mask, bos, eos or unk) is selected
    with probability ``mask_prob``; a selected token becomes ``<mask>`` with probability 0.8, a
    uniformly random standard amino acid with 0.1, and stays unchanged with 0.1.  ``labels``
    hold the original token at selected positions and -100 elsewhere.  If a batch with
    residues would have no selected position, one residue is selected at random (so the loss
    is always defined).

    Randomness comes from the collator's own ``torch.Generator`` (seeded with ``seed``), never
    from torch's global RNG.  Inside a DataLoader worker it is reseeded once with the worker's
    seed (``torch.initial_seed()``, derived from the loader's generator), so workers draw
    different but reproducible masks.
    """

    def __init__(self, mask_prob: float = 0.15, alphabet: Alphabet | None = None, seed: int = 0,
                 segments: bool = False):
        self.alphabet = alphabet or Alphabet()
        self.segments = segments
        self.mask_prob = mask_prob
        self.generator = torch.Generator().manual_seed(seed)
        self._seeded_in_pid = os.getpid()
        self._random_ids = torch.tensor(self.alphabet.standard_ids, dtype=torch.long)

    def __call__(self, examples: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        a = self.alphabet
        tokens = pad_tokens(examples, a.pad_id)
        attention_mask = key_mask(tokens, a)
        candidates = tokens >= a.num_special
        info = get_worker_info()
        if info is not None and self._seeded_in_pid != os.getpid():
            self.generator.manual_seed(torch.initial_seed())
            self._seeded_in_pid = os.getpid()
        g = self.generator
        selected = (torch.rand(tokens.shape, generator=g) < self.mask_prob) & candidates
        if not selected.any() and candidates.any():
            flat = torch.nonzero(candidates.view(-1)).squeeze(1)
            pick = flat[torch.randint(len(flat), (1,), generator=g)]
            selected.view(-1)[pick] = True
        labels = torch.where(selected, tokens, torch.full_like(tokens, IGNORE_INDEX))
        action = torch.rand(tokens.shape, generator=g)
        to_mask = selected & (action < 0.8)
        to_random = selected & (action >= 0.8) & (action < 0.9)
        random_tokens = self._random_ids[
            torch.randint(len(self._random_ids), tokens.shape, generator=g)
        ]
        input_ids = torch.where(to_mask, torch.full_like(tokens, a.mask_id), tokens)
        input_ids = torch.where(to_random, random_tokens, input_ids)
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
        return with_segments(batch, tokens, a) if self.segments else batch


class CLMCollator:
    """Causal LM: ``labels[:, t] = input_ids[:, t + 1]`` (already shifted), -100 at the last
    position and wherever the target is padding."""

    def __init__(self, alphabet: Alphabet | None = None, segments: bool = False):
        self.alphabet = alphabet or Alphabet()
        self.segments = segments

    def __call__(self, examples: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        pad = self.alphabet.pad_id
        tokens = pad_tokens(examples, pad)
        labels = torch.full_like(tokens, IGNORE_INDEX)
        labels[:, :-1] = tokens[:, 1:]
        labels[labels == pad] = IGNORE_INDEX
        mask = key_mask(tokens, self.alphabet)
        batch = {"input_ids": tokens, "labels": labels, "attention_mask": mask}
        return with_segments(batch, tokens, self.alphabet) if self.segments else batch


def with_segments(batch: dict[str, torch.Tensor], tokens: torch.Tensor,
                  alphabet: Alphabet) -> dict[str, torch.Tensor]:
    """Add ``segment_ids`` (B, L): one id per protein of a packed window, from the original
    (unmasked) tokens, so that attention stays within a protein."""
    batch["segment_ids"] = segment_ids_from_bos(tokens, alphabet.bos_id)
    return batch


def make_collator(objective: str, mask_prob: float = 0.15, seed: int = 0,
                  segments: bool = False):
    """The collator of ``objective``; ``segments`` adds ``segment_ids`` to every batch
    (``data.cross_protein_attention=false``)."""
    if objective == "mlm":
        return MLMCollator(mask_prob, seed=seed, segments=segments)
    if objective == "clm":
        return CLMCollator(segments=segments)
    raise ValueError(f"unknown objective {objective!r}; expected 'mlm' or 'clm'")
