"""``protperf-evaluate`` / ``scripts/evaluate.py``: checkpoints + data -> accuracy, perplexity.

A checkpoint can be evaluated with another attention kind than it was trained with
(``model.attention.kind=favor_relu`` on exact-Transformer weights, the paper's
backward-compatibility experiment), optionally after ``finetune.steps`` training steps.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pandas as pd
from omegaconf import DictConfig

from protperf.checkpoint.load import read_saved_model
from protperf.checkpoint.module import load_module
from protperf.checkpoint.writer import write_checkpoint
from protperf.cli.command import command
from protperf.cli.config import EvaluateConfig
from protperf.cli.registry import load_config
from protperf.data.datamodule import ProteinDataModule
from protperf.reporting.tables import write_table

log = logging.getLogger(__name__)





def evaluate_checkpoint(path: str, config: EvaluateConfig) -> dict[str, Any]:
    """One table row: the checkpoint evaluated (after optional fine-tuning) on ``split``."""
    saved = read_saved_model(path).hyper_parameters
    overrides = config.model.as_overrides()
    module = load_module(path, model_overrides=overrides)
    objective = module.task_config.objective
    pl.seed_everything(config.seed, workers=True)
    datamodule = ProteinDataModule(config.data, objective=objective)
    trainer_args = dataclasses.asdict(config.trainer)
    trainer_args.update(
        logger=False, enable_checkpointing=False, default_root_dir=config.output_dir
    )
    if config.finetune.steps > 0:
        if config.finetune.lr is not None:
            module.optim_config.lr = config.finetune.lr
        module.optim_config.warmup_steps = config.finetune.warmup_steps
        finetuner = pl.Trainer(**{**trainer_args, "max_steps": config.finetune.steps,
                                  "max_epochs": -1, "val_check_interval": None,
                                  "limit_val_batches": 0})
        finetuner.fit(module, datamodule=datamodule)
        finetuned = Path(config.output_dir, "finetuned", Path(path).stem + "-finetuned.ckpt")
        if finetuner.is_global_zero:  # the one checkpoint writer: atomic, with a content hash
            write_checkpoint(module.model, module.model_config, finetuned,
                             task=module.task_config, optim=module.optim_config,
                             seed=module.hparams.get("seed", 0),
                             global_step=finetuner.global_step)
        log.info("fine-tuned %d steps -> %s", config.finetune.steps, finetuned)
    trainer = pl.Trainer(**trainer_args)
    if config.split == "test":  # test or val (EvaluateConfig.validate)
        metrics = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    else:
        metrics = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    loss = metrics[f"{config.split}/loss"]
    return {
        "checkpoint": str(path),
        "model": saved["model"].get("name"),
        "objective": objective,
        "trained_attention": saved["model"]["attention"]["kind"],
        "eval_attention": module.model_config.attention.kind,
        "finetune_steps": config.finetune.steps,
        "split": config.split,
        "loss": loss,
        "accuracy_pct": 100 * metrics[f"{config.split}/acc"],
        "perplexity": math.exp(loss),
    }


def evaluate(cfg: DictConfig | EvaluateConfig) -> pd.DataFrame:
    """Evaluate every checkpoint; writes ``<output_dir>/<table_name>.csv`` and ``.md``."""
    config = load_config("evaluate", cfg)
    if isinstance(config.checkpoints, str):
        config.checkpoints = [config.checkpoints]
    rows = [evaluate_checkpoint(path, config) for path in config.checkpoints]
    table = pd.DataFrame(rows)
    csv_path, md_path = write_table(table, Path(config.output_dir, config.table_name))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.drop(columns=["checkpoint"]).to_string(index=False))
    print(f"[protperf] wrote {csv_path} and {md_path}", flush=True)
    return table


@command("evaluate")
def main(config: EvaluateConfig) -> None:
    evaluate(config)
