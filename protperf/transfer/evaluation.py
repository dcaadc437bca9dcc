"""Masked-LM accuracy and perplexity on fixed masks, over the 20 amino acids.

The same masks for every model: :func:`masked_batches` draws them once with the training
collator's recipe (:class:`protperf.data.collate.MLMCollator`: 15 % of residues, 80 % of those
become ``<mask>``, 10 % a random amino acid, 10 % unchanged) from its own seeded generator.
Scores are taken over the 20 standard amino acids only (softmax and argmax restricted to
them), so models whose vocabularies differ in special or rare tokens are compared alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from protperf.data.alphabet import Alphabet
from protperf.data.batching import IGNORE_INDEX
from protperf.data.collate import MLMCollator
from protperf.data.proteins import encode_protein
from protperf.model.transformer import ProteinLanguageModel

ALPHABET = Alphabet()


@dataclass(frozen=True)
class MaskedLMScore:
    """accuracy: fraction of masked residues whose best amino acid is the true one;
    perplexity: exp of their mean negative log-likelihood (nats); tokens: how many."""

    accuracy: float
    perplexity: float
    tokens: int


def encode_sequences(sequences: Sequence[str]) -> list[torch.Tensor]:
    """Amino-acid strings -> ``<cls> residues <eos>`` token ids (int64), one per sequence."""
    return [
        torch.tensor([ALPHABET.cls_id, *encode_protein(s).tolist(), ALPHABET.eos_id])
        for s in sequences
    ]


def masked_batches(
    sequences: Sequence[str], seed: int, batch_size: int = 16, mask_prob: float = 0.15
) -> list[dict[str, torch.Tensor]]:
    """Fixed masked batches (``input_ids``, ``labels``, ``attention_mask``) of ``sequences``
    in their order; the same ``seed`` gives the same masks."""
    collate = MLMCollator(mask_prob, seed=seed)
    tokens = encode_sequences(sequences)
    return [collate(tokens[i:i + batch_size]) for i in range(0, len(tokens), batch_size)]


def amino_acid_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """(..., V) logits -> (..., 20) log-probabilities over the standard amino acids."""
    return logits[..., ALPHABET.standard_ids].float().log_softmax(-1)


def masked_lm_nll(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed NLL, correct count and count over labelled positions, amino acids only.

    logits: (B, L, V); labels: (B, L) with :data:`IGNORE_INDEX` where no score is taken
    (labels must be standard amino acids elsewhere). Returns three scalars.
    """
    labelled = labels != IGNORE_INDEX
    log_probs = amino_acid_log_probs(logits[labelled])  # (N, 20)
    target = labels[labelled] - ALPHABET.standard_ids[0]  # the 20 ids are contiguous
    nll = -log_probs.gather(-1, target[:, None]).sum()
    correct = (log_probs.argmax(-1) == target).sum()
    return nll, correct, labelled.sum()


@torch.no_grad()
def masked_lm_score(
    model: ProteinLanguageModel, batches: Sequence[dict[str, torch.Tensor]]
) -> MaskedLMScore:
    """The model's accuracy and perplexity on the masked positions of ``batches``."""
    was_training = model.training
    model.eval()
    nll = correct = count = 0.0
    for batch in batches:
        logits = model(batch["input_ids"], attention_mask=batch["attention_mask"])
        batch_nll, batch_correct, batch_count = masked_lm_nll(logits, batch["labels"])
        nll, correct, count = nll + float(batch_nll), correct + int(batch_correct), \
            count + int(batch_count)
    model.train(was_training)
    return MaskedLMScore(correct / count, math.exp(nll / count), int(count))
