"""``ResumeCheckpoint``: ``last.ckpt`` at the final step and when the job is told to stop.

SLURM sends a signal before a time limit or a preemption (``sbatch --signal``; under
``hydra/launcher=slurm`` submitit asks for ``SIGUSR2`` ``signal_delay_s`` seconds ahead).
On SIGUSR1, SIGUSR2, SIGTERM, SIGHUP (terminal closed) or SIGINT (Ctrl-C) this callback lets
the current batch finish, writes ``<dirpath>/last.ckpt`` (the full training state, data
position included), and stops the trainer without validating (a stop costs at most one batch
plus one checkpoint write); under DDP the ranks agree on the stop at the same batch.  A second
Ctrl-C interrupts at once, without saving (Lightning's shutdown, exit status 1).  After ``fit``
returns,
:meth:`ResumeCheckpoint.hand_over` passes the signal to the handler that was installed before
training (submitit's, which requeues the job; a requeued job resumes from the newest
checkpoint of its run directory, see :func:`protperf.runtime.run_dir.resolve_ckpt_path`).

Saving at the final training step (not after ``fit``) keeps the epoch's data position and
running metrics in ``last.ckpt``, so "train N steps, resume to 2N" equals one 2N-step run.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class ResumeCheckpoint(pl.Callback):
    """Write ``<dirpath>/<filename>.ckpt`` at the last step and on a stop signal (see module)."""

    def __init__(self, dirpath: str | Path, filename: str = "last") -> None:
        self.dirpath = Path(dirpath)
        self.filename = filename
        self.received: int | None = None  # the signal number, once one arrived
        self.stopped_at: int | None = None  # global step of the stop checkpoint
        self._outer: dict[int, Any] = {}  # the program's handlers, before Lightning's
        self._previous: dict[int, Any] = {}  # what ours replaced (Lightning's, when fitting)
        self._saved_step: int | None = None

    @property
    def path(self) -> Path:
        return self.dirpath / f"{self.filename}.ckpt"

    # -- signals ---------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.received is not None:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without saving
        if self.received is None:
            again = " (Ctrl-C again: stop at once, without saving)" \
                if signum == signal.SIGINT else ""
            log.warning("received %s: saving a checkpoint after this batch, then stopping%s",
                        signal.Signals(signum).name, again)
            self.received = signum

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":  # before Lightning installs its handlers
            self._outer = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after Lightning's own handlers (registered when fit starts): ours decide
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    # -- saving ----------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        stop = self.received is not None
        if trainer.fit_loop._should_accumulate():  # mid gradient accumulation: not yet
            stop = False
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        final = 0 < trainer.max_steps <= trainer.global_step
        if stop or final:
            self.save(trainer)
        if stop and not final:
            self.stopped_at = trainer.global_step
            trainer.should_stop = True
            # Lightning validates when a run stops early: not after a stop signal, whose grace
            # period is short (the weights are saved; the resumed run validates on schedule)
            trainer.limit_val_batches = 0

    def save(self, trainer: pl.Trainer) -> None:
        """Save the full training state (every rank calls; rank 0 writes, atomically)."""
        trainer.save_checkpoint(self.path, weights_only=False)
        self._saved_step = trainer.global_step
        log.info("saved %s at step %d", self.path, trainer.global_step)

    def saved_at(self, step: int) -> bool:
        return self._saved_step == step

    def hand_over(self) -> None:
        """After ``fit``: give the signal to the handler the program had before training
        (e.g. submitit's requeue, which exits the process), if it had one."""
        if self.received is None:
            return
        outer = self._outer.get(self.received)
        if callable(outer) and outer is not signal.default_int_handler:
            outer(self.received, None)
