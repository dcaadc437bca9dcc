"""``save_top_k`` across resumes: best files the restored callback state does not know are
adopted back into it.

A ``ModelCheckpoint`` with a monitor keeps its ``save_top_k`` best files in ``best_k_models``
and stores that state in every checkpoint.  A checkpoint written *before* a best file (the
``last.ckpt`` of the final step, saved before the validation of that step; a periodic one
followed by a validation and then a crash) restores a state that does not list that file, and
the resumed run would never replace it: two "best" files with ``save_top_k=1``.  At the start
of training :class:`AdoptBestCheckpoints` reads, from each such file, the score its callback
recorded for it (a best file lists itself in the ``best_k_models`` it holds), puts it back into
``best_k_models`` and removes the files beyond ``save_top_k``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from protperf.checkpoint.load import load_checkpoint_file
from protperf.errors import CheckpointError

log = logging.getLogger(__name__)


def recorded_score(path: Path, callback: ModelCheckpoint) -> torch.Tensor | None:
    """The score ``callback`` (same state key and monitor) recorded for the best file ``path``
    when it wrote it; None if ``path`` is not one of its best files or cannot be read."""
    try:  # mmap, no hash check: only the pickled metadata is read
        saved = load_checkpoint_file(path, mmap=True)
    except (CheckpointError, FileNotFoundError):
        return None  # not a checkpoint of ours: not adopted
    state = saved.get("callbacks", {}).get(callback.state_key) if isinstance(saved, dict) else None
    if not isinstance(state, dict) or state.get("monitor") != callback.monitor:
        return None
    score = state.get("best_k_models", {}).get(str(path))
    return score if isinstance(score, torch.Tensor) else None


def adopt_best_files(callback: ModelCheckpoint, remove: bool) -> list[str]:
    """Add the unknown best files of ``callback.dirpath`` to its ``best_k_models``, keep the
    ``save_top_k`` best (deleting the others' files if ``remove``) and update its best / k-th
    fields; returns the adopted paths."""
    known = set(callback.best_k_models)
    adopted = []
    for path in sorted(Path(callback.dirpath).glob("*.ckpt")):
        if str(path) in known or path.name.startswith("."):
            continue
        score = recorded_score(path, callback)
        if score is not None:
            callback.best_k_models[str(path)] = score
            adopted.append(str(path))
    if not adopted:
        return adopted
    better_first = sorted(callback.best_k_models, key=lambda p: float(callback.best_k_models[p]),
                          reverse=callback.mode == "max")
    keep = better_first if callback.save_top_k < 0 else better_first[:callback.save_top_k]
    for path in better_first[len(keep):]:
        del callback.best_k_models[path]
        if remove:
            Path(path).unlink(missing_ok=True)
            log.info("removed %s: beyond save_top_k=%d", path, callback.save_top_k)
    callback.best_model_path, callback.kth_best_model_path = keep[0], keep[-1]
    callback.best_model_score = callback.best_k_models[keep[0]]
    callback.kth_value = callback.best_k_models[keep[-1]]
    return adopted


class AdoptBestCheckpoints(pl.Callback):
    """At the start of training (after a checkpoint was restored), adopt the best files that
    the restored state of each monitoring ``ModelCheckpoint`` does not know (see module)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.ckpt_path is None:
            return
        for callback in trainer.checkpoint_callbacks:
            if callback.monitor and callback.save_top_k != 0 and callback.dirpath \
                    and Path(callback.dirpath).is_dir():
                for path in adopt_best_files(callback, remove=trainer.is_global_zero):
                    log.info("%s: a best checkpoint written after the one resumed from; "
                             "kept in the top %d by its score", path, callback.save_top_k)
