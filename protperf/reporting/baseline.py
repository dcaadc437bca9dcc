"""The amino-acid-frequency (unigram) baseline: the perplexity to beat."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from protperf.model.loss import IGNORE_INDEX


def label_counts(batches: Iterable[dict[str, torch.Tensor]], vocab_size: int) -> torch.Tensor:
    """How often each token id is a training target (``labels`` != -100): (vocab_size,) int64."""
    counts = torch.zeros(vocab_size, dtype=torch.long)
    for batch in batches:
        labels = batch["labels"]
        counts += torch.bincount(labels[labels != IGNORE_INDEX].flatten(), minlength=vocab_size)
    return counts


def unigram_scores(
    train_counts: torch.Tensor, eval_counts: torch.Tensor, smoothing: float = 1.0
) -> tuple[float, float]:
    """(perplexity, accuracy) on ``eval_counts`` of the frequency model fitted on
    ``train_counts`` (add-``smoothing`` over the tokens seen in either split).

    The model predicts p(t) = (n_t + s) / (N + s V') for every target, independent of context;
    its accuracy is the share of eval targets equal to the most frequent training target.
    """
    support = (train_counts + eval_counts) > 0
    smoothed = train_counts.double() + smoothing * support.double()
    probs = smoothed / smoothed.sum()
    total = eval_counts.sum().item()
    if total == 0:
        raise ValueError("no labelled tokens in the evaluation split")
    nll = -(eval_counts.double() * torch.where(support, probs, 1.0).log()).sum().item() / total
    accuracy = eval_counts[int(train_counts.argmax())].item() / total
    return math.exp(nll), accuracy
