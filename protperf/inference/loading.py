"""Loading a checkpoint's network for inference (eval mode, optional device)."""

from __future__ import annotations

from pathlib import Path

import torch

from protperf.model.checkpoint import load_module
from protperf.model.transformer import ProteinLanguageModel


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ProteinLanguageModel:
    """The :class:`ProteinLanguageModel` of a training checkpoint (weights_only), in eval mode.

    Raises FileNotFoundError / CheckpointMismatchError with a one-line message.
    """
    return load_module(path).model.eval().to(device)
