"""Collators: lists of token tensors -> model batches.

Every batch is a dict of
    ``input_ids``      (B, L) int64
    ``labels``         (B, L) int64, ``-100`` where no loss is taken
    ``attention_mask`` (B, L) bool, True at real (non-pad) tokens
so that for both objectives the loss is ``cross_entropy(logits.view(-1, V), labels.view(-1),
ignore_index=-100)`` with no further shifting.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import get_worker_info

from protperf.data.alphabet import Alphabet

IGNORE_INDEX = -100


def pad_tokens(examples: list[torch.Tensor], pad_id: int) -> torch.Tensor:
    """``examples``: list of ``(L_i,)`` int64 -> ``(B, max L_i)`` right-padded with ``pad_id``."""
    if not examples:
        raise ValueError("cannot collate an empty batch")
    return torch.nn.utils.rnn.pad_sequence(examples, batch_first=True, padding_value=pad_id)


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

    def __init__(self, mask_prob: float = 0.15, alphabet: Alphabet | None = None, seed: int = 0):
        self.alphabet = alphabet or Alphabet()
        self.mask_prob = mask_prob
        self.generator = torch.Generator().manual_seed(seed)
        self._seeded_in_pid = os.getpid()
        self._random_ids = torch.tensor(self.alphabet.standard_ids, dtype=torch.long)

    def __call__(self, examples: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        a = self.alphabet
        tokens = pad_tokens(examples, a.pad_id)
        attention_mask = tokens != a.pad_id
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
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


class CLMCollator:
    """Causal LM: ``labels[:, t] = input_ids[:, t + 1]`` (already shifted), -100 at the last
    position and wherever the target is padding."""

    def __init__(self, alphabet: Alphabet | None = None):
        self.alphabet = alphabet or Alphabet()

    def __call__(self, examples: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        pad = self.alphabet.pad_id
        tokens = pad_tokens(examples, pad)
        labels = torch.full_like(tokens, IGNORE_INDEX)
        labels[:, :-1] = tokens[:, 1:]
        labels[labels == pad] = IGNORE_INDEX
        return {"input_ids": tokens, "labels": labels, "attention_mask": tokens != pad}


def make_collator(objective: str, mask_prob: float = 0.15, seed: int = 0):
    if objective == "mlm":
        return MLMCollator(mask_prob, seed=seed)
    if objective == "clm":
        return CLMCollator()
    raise ValueError(f"unknown objective {objective!r}; expected 'mlm' or 'clm'")
