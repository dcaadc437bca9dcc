"""Training batches: MLM / CLM labels on top of the padding and key mask of
:mod:`protperf.data.batching`.

Every batch is a dict of
    ``input_ids``      (B, L) int64
    ``labels``         (B, L) int64, :data:`~protperf.data.batching.IGNORE_INDEX` where no loss
                       is taken
    ``attention_mask`` (B, L) bool, True at real (non-pad) tokens
    ``segment_ids``    (B, L) int64, only with ``data.cross_protein_attention=false``
so that for both objectives the loss is ``cross_entropy(logits.view(-1, V), labels.view(-1),
ignore_index=IGNORE_INDEX)`` with no further shifting.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import get_worker_info

from protperf.data.alphabet import ALPHABET
from protperf.data.batching import IGNORE_INDEX, key_mask, pad_tokens, segment_ids_from_bos


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
    different but reproducible masks -- unless :meth:`reseed` seeded it in that worker (as
    :class:`~protperf.data.resume.SeededCollator` does before every batch).
    """

    def __init__(self, mask_prob: float = 0.15, seed: int = 0, segments: bool = False):
        self.segments = segments
        self.mask_prob = mask_prob
        self.generator = torch.Generator().manual_seed(seed)
        self._seeded_in_pid = os.getpid()
        self._random_ids = torch.tensor(ALPHABET.standard_ids, dtype=torch.long)

    def reseed(self, seed: int) -> None:
        """Draw the next masks from ``seed`` (in this process: no worker reseed follows)."""
        self.generator.manual_seed(seed)
        self._seeded_in_pid = os.getpid()

    def __call__(self, examples: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        a = ALPHABET
        tokens = pad_tokens(examples)
        attention_mask = key_mask(tokens)
        candidates = tokens >= a.num_special
        if get_worker_info() is not None and self._seeded_in_pid != os.getpid():
            self.reseed(torch.initial_seed())
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
        return with_segments(batch, tokens) if self.segments else batch


class CLMCollator:
    """Causal LM: ``labels[:, t] = input_ids[:, t + 1]`` (already shifted), -100 at the last
    position and wherever the target is padding."""

    def __init__(self, segments: bool = False):
        self.segments = segments

    def __call__(self, examples: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        tokens = pad_tokens(examples)
        labels = torch.full_like(tokens, IGNORE_INDEX)
        labels[:, :-1] = tokens[:, 1:]
        labels[labels == ALPHABET.pad_id] = IGNORE_INDEX
        batch = {"input_ids": tokens, "labels": labels, "attention_mask": key_mask(tokens)}
        return with_segments(batch, tokens) if self.segments else batch


def with_segments(batch: dict[str, torch.Tensor], tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Add ``segment_ids`` (B, L): one id per protein of a packed window, from the original
    (unmasked) tokens, so that attention stays within a protein."""
    batch["segment_ids"] = segment_ids_from_bos(tokens)
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
