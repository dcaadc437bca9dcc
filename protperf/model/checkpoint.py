"""The LightningModule of a saved model (:func:`load_module`) and atomic checkpoint writing
(:class:`AtomicCheckpointIO`); reading is Lightning-free in :mod:`protperf.model.loading`."""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from protperf.errors import CheckpointMismatchError, CheckpointWriteError
from protperf.model.lightning import ProteinLMModule
from protperf.model.loading import (
    feature_seed,
    first_line,
    load_weights,
    read_checkpoint,
    read_saved_model,
    resolve_configs,
)

__all__ = ["AtomicCheckpointIO", "CheckpointMismatchError", "load_module", "read_checkpoint"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but a file appears only complete: written next to the
    target (``.<name>.tmp-<pid>``) and renamed over it.  A failed write (disk full, no
    permission) removes the partial file and raises :class:`CheckpointWriteError` naming it."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        partial = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            super().save_checkpoint(checkpoint, partial, storage_options)
            os.replace(partial, path)
        except (OSError, RuntimeError) as error:
            partial.unlink(missing_ok=True)
            raise CheckpointWriteError(
                f"cannot write checkpoint {path}: {_reason(error)}") from None


def _reason(error: BaseException) -> str:
    for cause in (error, error.__cause__, error.__context__):
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return "no space left on the device (free some space, or set a checkpoint " \
                   "dirpath on another disk)"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    text = first_line(error)
    return "no space left on the device" if "write failed" in text else text


def load_module(
    path: str | Path,
    model_overrides: Mapping[str, Any] | None = None,
    task_overrides: Mapping[str, Any] | None = None,
) -> ProteinLMModule:
    """The LightningModule of a ``.ckpt`` file or export directory (training, evaluation).

    ``model_overrides`` may change what does not change parameter shapes, e.g.
    ``{"attention": {"kind": "favor_relu"}}`` to evaluate exact-attention weights as a
    Performer; changing a shape-defining key raises :class:`CheckpointMismatchError`.
    Inference needs no LightningModule: :func:`protperf.model.loading.load_model`.
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
