"""What a command checks after its config and before it imports its heavy stack.

Every command refuses a checkpoint path that is not there. Training takes its run directory's
lock and finds the checkpoint to resume from here, before
Lightning and the model are imported: a second run on a busy directory, ``ckpt_path=last``
with no checkpoint, or a fresh run in a finished directory is refused in about a second. The
lock is held until the command ends (:func:`protperf.app.train.train` takes it again, which
this process may: :func:`protperf.runtime.run_lock.run_directory_lock` is reentrant).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from protperf.checkpoint.paths import check_saved_model, is_local_path
from protperf.runtime.run_dir import refuse_finished_run_dir, requeued, resolve_ckpt_path
from protperf.runtime.run_lock import REQUEUE_WAIT_S, run_directory_lock


@contextlib.contextmanager
def train_preflight(config: Any) -> Iterator[None]:
    """Hold the run directory's lock; refuse a resume without a checkpoint, or a fresh run
    where a finished one is."""
    with run_directory_lock(config.output_dir, wait_s=REQUEUE_WAIT_S if requeued() else 0):
        if resolve_ckpt_path(config.ckpt_path, config.output_dir, quiet=True) is None:
            refuse_finished_run_dir(config.output_dir)
        yield


#: Config keys that name saved models a command reads (a path, or a list of paths).
MODEL_KEYS = ("checkpoint", "checkpoints", "init_from")


def check_saved_models(config: Any) -> None:
    """Refuse a saved model the config names that is not there (a path that can only be
    local: :func:`is_local_path`), before torch loads: ``checkpoint X does not exist``."""
    for key in MODEL_KEYS:
        value = getattr(config, key, None)
        for path in [value] if isinstance(value, str) else list(value or []):
            if isinstance(path, str) and path and is_local_path(path):
                check_saved_model(path)


#: command -> its preflight (a context manager around the command's task)
PREFLIGHTS: dict[str, Callable[[Any], contextlib.AbstractContextManager]] = {
    "train": train_preflight,
}


def preflight(command: str, config: Any) -> contextlib.AbstractContextManager:
    """The preflight of ``command`` on its validated ``config``: the saved models it names
    exist, then the command's own (training's run lock)."""
    check_saved_models(config)
    check = PREFLIGHTS.get(command)
    return check(config) if check is not None else contextlib.nullcontext()
