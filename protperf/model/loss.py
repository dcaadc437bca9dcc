"""Token-level language-modeling loss and accuracy (pure functions)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from protperf.data.batching import IGNORE_INDEX


def token_loss_and_accuracy(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy over labelled positions.

    logits: (B, L, V); labels: (B, L) int64 with ``-100`` at ignored positions.
    Returns (loss, correct, count): the mean NLL in nats over the ``count`` labelled tokens
    (0.0, still differentiable, when a batch has none), and how many of them the argmax hits.
    """
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    flat_labels = labels.reshape(-1)
    labelled = flat_labels != IGNORE_INDEX
    count = labelled.sum()
    nll_sum = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    loss = nll_sum / count.clamp(min=1)
    with torch.no_grad():
        correct = ((flat_logits.argmax(-1) == flat_labels) & labelled).sum()
    return loss, correct, count
