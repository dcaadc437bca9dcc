"""Atomic checkpoint writes: a checkpoint file appears only complete, or not at all."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from protperf.errors import CheckpointWriteError


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
    text = _first_line(error)
    return "no space left on the device" if "write failed" in text else text


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0].strip()
