"""``protperf-convert`` / ``scripts/convert.py``: an exact-attention model -> a Performer
checkpoint (:func:`protperf.transfer.convert`) on the runtime of ``train`` (locked run
directory, exact resume, stop signals and SLURM requeue, non-finite guard, loggers, sweeps);
writes ``summary.json`` and prints the summary line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from protperf.app.convert_config import ConvertConfig
from protperf.checkpoint.atomic import write_text
from protperf.cli.command import command
from protperf.cli.registry import load_config
from protperf.cli.typed import typed_keys
from protperf.runtime.fit import (
    resume_path,
    run_locked,
    start_trainer,
    stopped_by_signal,
    stopped_early,
)
from protperf.transfer.converter import ConversionPlan, convert, plan_conversion

#: Data keys that only masked-LM batches use (refused, when typed, for a causal source).
MLM_DATA_KEYS = ("data.mask_prob",)


def plan(config: ConvertConfig) -> ConversionPlan:
    """Every check of the inputs, before the run directory is touched."""
    typed = typed_keys("data") or []
    return plan_conversion(
        config.checkpoint, config.output, config.data,
        config.model.as_overrides().get("attention", {}), config.convert,
        objective=config.objective, force=config.force,
        mlm_data_keys=[key for key in typed if key in MLM_DATA_KEYS])


def run(cfg: Any) -> dict[str, Any]:
    """Convert; returns the summary (also ``<run dir>/summary.json``)."""
    config = load_config("convert", cfg)
    checked = plan(config)
    return run_locked(config, lambda c: convert_in_locked_dir(c, checked))


def convert_in_locked_dir(config: ConvertConfig, checked: ConversionPlan) -> dict[str, Any]:
    ckpt_path = resume_path(config)
    trainer = start_trainer(config, ckpt_path)
    result = convert(config.checkpoint, config.output, trainer=trainer, ckpt_path=ckpt_path,
                     plan=checked)
    resume = stopped_by_signal(trainer)
    if resume is not None:
        return {**stopped_early(trainer, config, resume), "recovery": float("nan")}
    summary = {"run_name": config.run_name, "source": config.checkpoint,
               "attention": checked.attention, **result.as_dict(),
               "output_dir": str(config.output_dir)}
    if trainer.is_global_zero:
        write_text(Path(config.output_dir, "summary.json"),
                   json.dumps(summary, indent=2, default=str) + "\n")
        print(result.summary_line(), flush=True)
    return summary


@command("convert")
def main(config: ConvertConfig) -> float:
    """Convert; returns the recovery reached (the objective of Hydra sweepers: maximize)."""
    return run(config)["recovery"]
