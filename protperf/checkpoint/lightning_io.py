"""Atomic checkpoint writes: a checkpoint file appears only complete, or not at all, and never
with non-finite weights; partial files of dead writers are removed."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from protperf.checkpoint.atomic import host_name, pid_alive
from protperf.checkpoint.load import first_line
from protperf.errors import CheckpointWriteError, TrainingDivergedError

log = logging.getLogger(__name__)
#: ``.<name>.tmp-<host>-<pid>``: the partial file of a checkpoint being written.
PARTIAL_MARK = ".tmp-"


def partial_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place."""
    host = host_name().replace("-", "_")
    return path.with_name(f".{path.name}{PARTIAL_MARK}{host}-{os.getpid()}")


def remove_dead_partials(directory: str | Path) -> list[Path]:
    """Remove the partial checkpoint files in ``directory`` left by writers that died (written
    on this host by a process that no longer runs); returns them.  Partial files of another
    host or of a live process, and those of the old ``.<name>.tmp-<pid>`` form whose process
    is alive, are left alone."""
    directory = Path(directory)
    removed = []
    for path in sorted(directory.glob(f".*.ckpt{PARTIAL_MARK}*")) if directory.is_dir() else []:
        tail = path.name.rsplit(PARTIAL_MARK, 1)[1]
        host, _, pid = tail.rpartition("-")
        same_host = host in ("", host_name().replace("-", "_"))  # "": the old form, no host
        if pid.isdigit() and same_host and not pid_alive(int(pid)) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
            log.warning("removed %s, the partial file of a checkpoint write that was "
                        "interrupted", path)
    return removed


def first_nonfinite(state_dict: dict[str, Any]) -> str | None:
    """The name of the first floating tensor of ``state_dict`` with a NaN or inf, else None."""
    for name, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() \
                and not bool(torch.isfinite(value).all()):
            return name
    return None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but a file appears only complete: written next to the
    target (``.<name>.tmp-<host>-<pid>``) and renamed over it.  A failed write (disk full, no
    permission) removes the partial file and raises :class:`CheckpointWriteError` naming it.
    Weights with a NaN or inf are never written (:class:`TrainingDivergedError`): a finite
    ``last.ckpt`` or best checkpoint is never replaced by a diverged one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        bad = first_nonfinite(checkpoint.get("state_dict", {}))
        if bad is not None:
            raise TrainingDivergedError(
                f"not writing checkpoint {path} at step {checkpoint.get('global_step', '?')}: "
                f"weight {bad} is not finite (NaN or inf); the previous checkpoint is kept")
        partial = partial_path(path)
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
