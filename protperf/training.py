"""Training as a library: a train config -> Lightning fit -> ``summary.json``.

    import protperf
    summary = protperf.train(protperf.compose_config("train", ["output_dir=runs/a"]))

:func:`train` takes the typed :class:`~protperf.cli.config.TrainConfig` (or a composed Hydra
config); ``protperf-train`` (:mod:`protperf.app.train`) is the command around it.
"""

from __future__ import annotations

import json
import logging
import math
import signal
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig

from protperf.checkpoint.lightning_io import AtomicCheckpointIO, remove_dead_partials
from protperf.checkpoint.module import load_module, read_checkpoint
from protperf.cli.config import TrainConfig
from protperf.cli.registry import load_config
from protperf.data.datamodule import ProteinDataModule
from protperf.errors import ConfigError
from protperf.model.lightning import ProteinLMModule
from protperf.runtime.best_checkpoints import AdoptBestCheckpoints
from protperf.runtime.divergence import DivergenceGuard
from protperf.runtime.launch import check_ddp_launch
from protperf.runtime.preemption import ResumeCheckpoint
from protperf.runtime.run_dir import requeued, resolve_ckpt_path
from protperf.runtime.run_lock import REQUEUE_WAIT_S, run_directory_lock
from protperf.structured import to_plain

log = logging.getLogger(__name__)


def build_trainer(config: TrainConfig) -> pl.Trainer:
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


def build_module(config: TrainConfig) -> ProteinLMModule:
    """A fresh module, or one whose weights come from ``init_from`` (attention kind may differ)."""
    module = ProteinLMModule(
        model=config.model,
        task=config.task,
        optim=config.optim,
        seed=config.seed,
    )
    if config.init_from:
        source = load_module(config.init_from, model_overrides=to_plain(config.model))
        module.model.load_state_dict(source.model.state_dict())
        log.info("initialised weights from %s", config.init_from)
    return module


def train(cfg: DictConfig | TrainConfig) -> dict[str, Any]:
    """Fit, validate the final weights, write ``summary.json``; returns the summary.  The run
    directory is locked for the run (one run per directory, see
    :mod:`protperf.runtime.run_lock`)."""
    config = load_config("train", cfg)
    check_ddp_launch(config.trainer.strategy, config.trainer.devices, config.trainer.num_nodes)
    pl.seed_everything(config.seed, workers=True)
    with run_directory_lock(config.output_dir, wait_s=REQUEUE_WAIT_S if requeued() else 0):
        return train_in_locked_dir(config)


def train_in_locked_dir(config: TrainConfig) -> dict[str, Any]:
    """:func:`train` once the run directory is ours."""
    ckpt_path = resolve_ckpt_path(config.ckpt_path, config.output_dir)
    if ckpt_path is None:
        refuse_finished_run_dir(config.output_dir)
    else:
        read_checkpoint(ckpt_path)  # a missing, corrupt or unsafe file: one line, before fit
    datamodule = ProteinDataModule(config.data, objective=config.task.objective)
    # empty splits: one line now, not a traceback after training
    datamodule.check_splits(["train", "valid", *(["test"] if config.test_after_fit else [])])
    module = build_module(config)
    trainer = build_trainer(config)
    if trainer.is_global_zero:  # partial files of interrupted checkpoint writes
        for directory in checkpoint_dirs(trainer):
            remove_dead_partials(directory)
    if ckpt_path is not None:
        keep_csv_history(trainer)
    for logger in trainer.loggers:
        logger.log_hyperparams(to_plain(config))
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    resume = next((c for c in trainer.callbacks if isinstance(c, ResumeCheckpoint)), None)
    if resume is not None and resume.stopped_at is not None:
        return stopped_early(trainer, config, resume)
    last_checkpoint = save_last_checkpoint(trainer)
    metrics = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    summary: dict[str, Any] = {
        "run_name": config.run_name,
        "model": config.model.name,
        "attention": config.model.attention.kind,
        "objective": config.task.objective,
        "step": trainer.global_step,
        "val_loss": metrics["val/loss"],
        "val_acc": metrics["val/acc"],
        "val_ppl": math.exp(metrics["val/loss"]),
        "checkpoint": last_checkpoint,
        "best_checkpoint": _best_checkpoint(trainer),
        "output_dir": str(config.output_dir),
    }
    if config.test_after_fit:
        test = trainer.test(module, datamodule=datamodule, verbose=False)[0]
        summary.update(test_loss=test["test/loss"], test_acc=test["test/acc"],
                       test_ppl=math.exp(test["test/loss"]))
    if trainer.is_global_zero:
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        Path(config.output_dir, "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(summary_line(summary), flush=True)
    return summary


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
        path.write_text(history)
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


def stopped_early(trainer: pl.Trainer, config: TrainConfig, resume: ResumeCheckpoint) -> dict:
    """After a stop signal: say where the checkpoint is, pass the signal on (submitit
    requeues the job), skip the final evaluation."""
    name = signal_name(resume.received)
    summary = {"run_name": config.run_name, "step": trainer.global_step, "stopped_by": name,
               "checkpoint": str(resume.path), "output_dir": str(config.output_dir),
               "val_loss": math.nan}
    if trainer.is_global_zero:
        print(f"[protperf] {config.run_name} stopped by {name} at step {trainer.global_step}; "
              f"checkpoint={resume.path}; resume with ckpt_path=last "
              f"hydra.run.dir={config.output_dir}", flush=True)
    resume.hand_over()
    return summary


def signal_name(signum: int | None) -> str:
    return signal.Signals(signum).name if signum is not None else "signal"


def save_last_checkpoint(trainer: pl.Trainer) -> str | None:
    """``<checkpoint dir>/last.ckpt`` with the final training state (resumable), unless
    checkpointing is off: written by :class:`ResumeCheckpoint` at the final step (data
    position included) or, when training ended with an epoch, here."""
    callbacks = trainer.checkpoint_callbacks
    resume = next((c for c in trainer.callbacks if isinstance(c, ResumeCheckpoint)), None)
    if resume is not None and resume.saved_at(trainer.global_step):
        return str(resume.path)
    if not callbacks or callbacks[0].dirpath is None:
        return None
    path = Path(callbacks[0].dirpath, "last.ckpt")
    trainer.save_checkpoint(path, weights_only=False)  # full state: resumable
    return str(path)


def _best_checkpoint(trainer: pl.Trainer) -> str | None:
    for callback in trainer.checkpoint_callbacks:
        if callback.monitor and callback.best_model_path:
            return callback.best_model_path
    return None


def summary_line(summary: dict[str, Any]) -> str:
    """One line: run, step, val loss / accuracy / perplexity, checkpoint."""
    line = (
        f"[protperf] {summary['run_name']} step={summary['step']} "
        f"val_loss={summary['val_loss']:.4f} val_acc={100 * summary['val_acc']:.2f}% "
        f"val_ppl={summary['val_ppl']:.3f}"
    )
    if "test_loss" in summary:
        line += f" test_acc={100 * summary['test_acc']:.2f}% test_ppl={summary['test_ppl']:.3f}"
    return line + f" checkpoint={summary['checkpoint']}"
