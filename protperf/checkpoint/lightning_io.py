"""Lightning's checkpoint plugin writing through :mod:`protperf.checkpoint.atomic`: a
checkpoint file appears only complete, with a content hash of its weights, and never with
non-finite weights; reading checks both (:mod:`protperf.checkpoint.integrity`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from protperf.checkpoint.atomic import atomic_path, remove_dead_leftovers
from protperf.checkpoint.integrity import (
    INTEGRITY_KEY,
    check_finite,
    first_nonfinite,
    integrity_record,
    verify_integrity,
)
from protperf.errors import TrainingDivergedError

log = logging.getLogger(__name__)
#: Advice for a full disk while saving a checkpoint.
FULL_DISK_ADVICE = "free some space, or set a checkpoint dirpath on another disk"

__all__ = ["AtomicCheckpointIO", "remove_dead_partials"]


def remove_dead_partials(directory: str | Path) -> list[Path]:
    """Remove the partial files in ``directory`` left by writers that died on this host
    (:func:`protperf.checkpoint.atomic.remove_dead_leftovers`); returns them."""
    return remove_dead_leftovers(directory)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but a file appears only complete (written beside the
    target and renamed over it, :func:`~protperf.checkpoint.atomic.atomic_path`) and carries
    the sha256 of each weight (:data:`INTEGRITY_KEY`). A failed write (disk full, no
    permission) removes the partial file and raises a one-line ``CheckpointWriteError``.
    Weights with a NaN or inf are never written (:class:`TrainingDivergedError`): a finite
    ``last.ckpt`` or best checkpoint is never replaced by a diverged one. Loading (resume)
    checks the hash and the weights."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        state_dict = checkpoint.get("state_dict", {})
        bad = first_nonfinite(state_dict)
        if bad is not None:
            raise TrainingDivergedError(
                f"not writing checkpoint {path} at step {checkpoint.get('global_step', '?')}: "
                f"weight {bad} is not finite (NaN or inf); the previous checkpoint is kept")
        checkpoint[INTEGRITY_KEY] = integrity_record(state_dict)
        with atomic_path(path, "checkpoint", FULL_DISK_ADVICE) as partial:
            super().save_checkpoint(checkpoint, partial, storage_options)

    def load_checkpoint(self, path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        checkpoint = super().load_checkpoint(path, *args, **kwargs)
        if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
            source = f"checkpoint {path}"
            verify_integrity(checkpoint["state_dict"], checkpoint.get(INTEGRITY_KEY), source)
            check_finite(checkpoint["state_dict"], source)
        return checkpoint
