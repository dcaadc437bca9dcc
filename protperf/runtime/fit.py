"""What every Lightning command (``train``, ``convert``) does around its ``fit``: one locked run
directory, the checkpoint a run resumes from, the trainer with the runtime's plugins and
callbacks, and what a stop signal leaves behind.

A command's typed root provides ``trainer`` (:class:`~protperf.cli.config.TrainerConfig`),
``divergence``, ``logger`` / ``callbacks`` (Hydra ``_target_`` nodes), ``seed``,
``ckpt_path``, ``run_name`` and ``output_dir``.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import lightning.pytorch as pl
from hydra.utils import instantiate
from lightning.pytorch.plugins.environments import SLURMEnvironment

from protperf.checkpoint.atomic import write_text
from protperf.checkpoint.lightning_io import AtomicCheckpointIO, remove_dead_partials
from protperf.checkpoint.load import read_checkpoint
from protperf.errors import ConfigError
from protperf.runtime.best_checkpoints import AdoptBestCheckpoints
from protperf.runtime.divergence import DivergenceGuard
from protperf.runtime.launch import check_ddp_launch
from protperf.runtime.preemption import ResumeCheckpoint
from protperf.runtime.run_dir import requeued, resolve_ckpt_path
from protperf.runtime.run_lock import REQUEUE_WAIT_S, run_directory_lock
from protperf.structured import to_plain

T = TypeVar("T")


def run_locked(config: Any, body: Callable[[Any], T]) -> T:
    """``body(config)`` with the run directory locked (one run per directory, see
    :mod:`protperf.runtime.run_lock`), after the DDP launch check and seeding."""
    check_ddp_launch(config.trainer.strategy, config.trainer.devices, config.trainer.num_nodes)
    pl.seed_everything(config.seed, workers=True)
    with run_directory_lock(config.output_dir, wait_s=REQUEUE_WAIT_S if requeued() else 0):
        return body(config)


def resume_path(config: Any) -> str | None:
    """The checkpoint this run resumes from (None: a fresh run, refused in a directory that
    holds another run's results); a missing, corrupt or unsafe file fails in one line now."""
    ckpt_path = resolve_ckpt_path(config.ckpt_path, config.output_dir)
    if ckpt_path is None:
        refuse_finished_run_dir(config.output_dir)
    else:
        read_checkpoint(ckpt_path)
    return ckpt_path


def build_trainer(config: Any) -> pl.Trainer:
    """A Lightning Trainer with the configured loggers and callbacks (Hydra ``_target_`` nodes)."""
    loggers = [instantiate(node) for node in config.logger.values() if node]
    callbacks = [instantiate(node) for node in config.callbacks.values() if node]
    callbacks += [DivergenceGuard(**asdict(config.divergence)), AdoptBestCheckpoints()]
    has_checkpoint = any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in callbacks)
    # Requeue has one owner: submitit (hydra/launcher=slurm), after ResumeCheckpoint saved;
    # Lightning's own SLURM handler would save mid-step and requeue a second time.
    plugins: list[Any] = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return pl.Trainer(
        **asdict(config.trainer),
        logger=loggers or False,
        callbacks=callbacks,
        enable_checkpointing=has_checkpoint,
        default_root_dir=config.output_dir,
        plugins=plugins,
    )


def start_trainer(config: Any, ckpt_path: str | None) -> pl.Trainer:
    """:func:`build_trainer`, then: partial files of interrupted checkpoint writes removed, a
    resumed run's CSV history kept, the config logged as hyper-parameters."""
    trainer = build_trainer(config)
    if trainer.is_global_zero:
        for directory in checkpoint_dirs(trainer):
            remove_dead_partials(directory)
    if ckpt_path is not None:
        keep_csv_history(trainer)
    for logger in trainer.loggers:
        logger.log_hyperparams(to_plain(config))
    return trainer


def checkpoint_dirs(trainer: pl.Trainer) -> set[Path]:
    """Every folder the run's checkpoint callbacks write into."""
    dirs = {Path(c.dirpath) for c in trainer.checkpoint_callbacks if c.dirpath is not None}
    dirs |= {c.dirpath for c in trainer.callbacks if isinstance(c, ResumeCheckpoint)}
    return dirs


def keep_csv_history(trainer: pl.Trainer) -> None:
    """A resumed run appends to the run's ``metrics.csv`` (Lightning's CSV logger would start
    the file anew and lose the steps before the interruption)."""
    for logger in trainer.loggers:
        if not isinstance(logger, pl.loggers.CSVLogger) or not trainer.is_global_zero:
            continue
        path = Path(logger.log_dir, "metrics.csv")
        if not path.is_file():
            continue
        history = path.read_text()
        header = history.splitlines()[0].split(",") if history else []
        writer = logger.experiment  # creating the writer deletes the file
        write_text(path, history)
        writer.metrics_keys = header


def refuse_finished_run_dir(output_dir: str) -> None:
    """A fresh run never writes into a directory that holds another run's results."""
    found = [name for name, present in (
        ("summary.json", Path(output_dir, "summary.json").is_file()),
        ("checkpoints", any(Path(output_dir, "checkpoints").glob("*.ckpt"))),
    ) if present]
    if found:
        raise ConfigError(
            f"output directory {output_dir} already holds a run ({', '.join(found)}): resume it "
            "with ckpt_path=last, or choose another hydra.run.dir"
        )


def resume_callback(trainer: pl.Trainer) -> ResumeCheckpoint | None:
    return next((c for c in trainer.callbacks if isinstance(c, ResumeCheckpoint)), None)


def stopped_by_signal(trainer: pl.Trainer) -> ResumeCheckpoint | None:
    """The run's :class:`ResumeCheckpoint` if a stop signal ended ``fit``, else None."""
    resume = resume_callback(trainer)
    return resume if resume is not None and resume.stopped_at is not None else None


def stopped_early(trainer: pl.Trainer, config: Any, resume: ResumeCheckpoint) -> dict:
    """After a stop signal: say where the checkpoint is, pass the signal on (submitit
    requeues the job), skip the final evaluation."""
    name = signal_name(resume.received)
    summary = {"run_name": config.run_name, "step": trainer.global_step, "stopped_by": name,
               "checkpoint": str(resume.path), "output_dir": str(config.output_dir)}
    if trainer.is_global_zero:
        print(f"[protperf] {config.run_name} stopped by {name} at step {trainer.global_step}; "
              f"checkpoint={resume.path}; resume with ckpt_path=last "
              f"hydra.run.dir={config.output_dir}", flush=True)
    resume.hand_over()
    return summary


def signal_name(signum: int | None) -> str:
    return signal.Signals(signum).name if signum is not None else "signal"
