"""The LightningModule of a saved model (:func:`load_module`), for training and evaluation;
reading is Lightning-free in :mod:`protperf.checkpoint.load` (writing checkpoints atomically:
:mod:`protperf.checkpoint.lightning_io`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from protperf.checkpoint.load import (
    feature_seed,
    load_weights,
    read_checkpoint,
    read_saved_model,
    resolve_configs,
)
from protperf.errors import CheckpointMismatchError
from protperf.model.lightning import ProteinLMModule

__all__ = ["CheckpointMismatchError", "load_module", "read_checkpoint"]


def load_module(
    path: str | Path,
    model_overrides: Mapping[str, Any] | None = None,
    task_overrides: Mapping[str, Any] | None = None,
) -> ProteinLMModule:
    """The LightningModule of a ``.ckpt`` file or export directory (training, evaluation).

    ``model_overrides`` may change what does not change parameter shapes, e.g.
    ``{"attention": {"kind": "favor_relu"}}`` to evaluate exact-attention weights as a
    Performer; changing a shape-defining key raises :class:`CheckpointMismatchError`.
    Inference needs no LightningModule: :func:`protperf.checkpoint.load.load_model`.
    """
    saved = read_saved_model(path)
    model_config, task_config = resolve_configs(saved, model_overrides, task_overrides)
    hparams = saved.hyper_parameters
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(feature_seed(hparams))
        module = ProteinLMModule(model=model_config, task=task_config, optim=hparams.get("optim"),
                                 seed=hparams.get("seed", 0))
    load_weights(module.model, saved)
    return module
