"""``protperf-train`` / ``scripts/train.py``: Hydra config -> Lightning fit -> ``summary.json``."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from protperf.app.cli import hydra_command
from protperf.app.config import TrainConfig, validate
from protperf.app.launch import check_ddp_launch
from protperf.app.schema import register_configs
from protperf.data.datamodule import ProteinDataModule
from protperf.model.checkpoint import load_module
from protperf.model.lightning import ProteinLMModule
from protperf.structured import to_dataclass, to_plain

log = logging.getLogger(__name__)


def resolve_config(cfg: DictConfig) -> TrainConfig:
    """Instantiate the typed config (runs every ``__post_init__``) and :func:`validate` it."""
    config = to_dataclass(TrainConfig, cfg)
    validate(config)
    return config


def build_trainer(cfg: DictConfig, config: TrainConfig) -> pl.Trainer:
    """A Lightning Trainer with the configured loggers and callbacks (Hydra ``_target_`` nodes)."""
    loggers = [instantiate(node) for node in (cfg.logger or {}).values() if node]
    callbacks = [instantiate(node) for node in (cfg.callbacks or {}).values() if node]
    has_checkpoint = any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in callbacks)
    return pl.Trainer(
        **asdict(config.trainer),
        logger=loggers or False,
        callbacks=callbacks,
        enable_checkpointing=has_checkpoint,
        default_root_dir=config.output_dir,
    )


def build_module(config: TrainConfig) -> ProteinLMModule:
    """A fresh module, or one whose weights come from ``init_from`` (attention kind may differ)."""
    module = ProteinLMModule(
        model=to_plain(config.model),
        task=to_plain(config.task),
        optim=to_plain(config.optim),
        seed=config.seed,
    )
    if config.init_from:
        source = load_module(config.init_from, model_overrides=to_plain(config.model))
        module.model.load_state_dict(source.model.state_dict())
        log.info("initialised weights from %s", config.init_from)
    return module


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, validate the final weights, write ``summary.json``; returns the summary."""
    config = resolve_config(cfg)
    check_ddp_launch(config.trainer.strategy, config.trainer.devices, config.trainer.num_nodes)
    pl.seed_everything(config.seed, workers=True)
    datamodule = ProteinDataModule(config.data, objective=config.task.objective)
    module = build_module(config)
    trainer = build_trainer(cfg, config)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainer.fit(module, datamodule=datamodule, ckpt_path=config.ckpt_path, weights_only=True)
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


def save_last_checkpoint(trainer: pl.Trainer) -> str | None:
    """Write ``<checkpoint dir>/last.ckpt`` with the final training state (resumable), unless
    checkpointing is off. Lightning's callbacks only save on their own triggers."""
    callbacks = trainer.checkpoint_callbacks
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


@hydra_command("train", register_configs)
def main(cfg: DictConfig) -> float:
    """Train; returns the final validation loss (the objective of Hydra sweepers)."""
    return train(cfg)["val_loss"]
