"""Training as a library: a train config -> Lightning fit -> ``summary.json``.

    import protperf
    summary = protperf.train(protperf.compose_config("train", ["output_dir=runs/a"]))

:func:`train` takes the typed :class:`~protperf.cli.config.TrainConfig` (or a composed Hydra
config); ``protperf-train`` (:mod:`protperf.app.train`) is the command around it. What every
Lightning command does around its ``fit`` (run directory, resume, trainer, stop signals) is
:mod:`protperf.runtime.fit`, shared with ``protperf-convert``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from omegaconf import DictConfig

from protperf.checkpoint.atomic import write_text
from protperf.checkpoint.load import read_saved_model
from protperf.checkpoint.module import load_module
from protperf.cli.config import TrainConfig
from protperf.cli.registry import load_config
from protperf.cli.typed import typed_keys, typed_values
from protperf.data.datamodule import ProteinDataModule
from protperf.model.compat import merge_overrides
from protperf.model.config import ModelConfig
from protperf.model.lightning import ProteinLMModule
from protperf.runtime.fit import (
    build_trainer,  # noqa: F401 (the runtime's trainer, as the tests import it)
    resume_callback,
    resume_path,
    run_locked,
    start_trainer,
    stopped_by_signal,
    stopped_early,
)
from protperf.structured import to_dataclass, to_plain

log = logging.getLogger(__name__)


def init_from_architecture(config: TrainConfig, typed: list[str] | None) -> TrainConfig:
    """With ``init_from``: ``config`` whose ``model`` is the checkpoint's architecture with
    only the ``typed`` model keys (:func:`protperf.cli.typed.typed_keys`) overriding it, e.g.
    ``model.attention.kind=favor_relu``; ``typed`` None (not run by Hydra): ``config.model``
    as it is."""
    if not config.init_from or typed is None:
        return config
    saved = read_saved_model(config.init_from).hyper_parameters["model"]
    model = to_dataclass(ModelConfig, merge_overrides(
        saved, typed_values(config.model, "model", typed)), "model")
    resolved = dataclasses.replace(config, model=model)
    resolved.validate()
    log.info("init_from=%s: its architecture%s", config.init_from,
             f", with {', '.join(typed)} as typed" if typed else "")
    return resolved


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
    config = init_from_architecture(load_config("train", cfg), typed_keys("model"))
    return run_locked(config, train_in_locked_dir)


def train_in_locked_dir(config: TrainConfig) -> dict[str, Any]:
    """:func:`train` once the run directory is ours."""
    ckpt_path = resume_path(config)
    datamodule = ProteinDataModule(config.data, objective=config.task.objective)
    # empty splits: one line now, not a traceback after training
    datamodule.check_splits(["train", "valid", *(["test"] if config.test_after_fit else [])])
    module = build_module(config)
    trainer = start_trainer(config, ckpt_path)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    resume = stopped_by_signal(trainer)
    if resume is not None:
        return {**stopped_early(trainer, config, resume), "val_loss": math.nan}
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
        write_text(Path(config.output_dir, "summary.json"), json.dumps(summary, indent=2) + "\n")
        print(summary_line(summary), flush=True)
    return summary


def save_last_checkpoint(trainer: pl.Trainer) -> str | None:
    """``<checkpoint dir>/last.ckpt`` with the final training state (resumable), unless
    checkpointing is off: written by :class:`ResumeCheckpoint` at the final step (data
    position included) or, when training ended with an epoch, here."""
    callbacks = trainer.checkpoint_callbacks
    resume = resume_callback(trainer)
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

