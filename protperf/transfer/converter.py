"""Exact -> Performer: :func:`convert`, the library face of ``protperf-convert``.

``convert("esm2.ckpt", "esm2_performer.ckpt", DataConfig(path="my.fasta"))`` reads an
exact-attention protperf checkpoint or export directory (an imported ESM-2 / BERT-family
model, or protperf's own MLM or causal model), rebuilds it with Performer attention (the same
weights; only ``model.attention.*`` differs), trains it against its exact self with the
Lightning trainer (:class:`~protperf.transfer.module.ConversionModule`), and writes the best
validated step as an ordinary checkpoint that every command takes. No Hydra needed: pass typed
configs, and a Lightning trainer or its keyword arguments (``protperf-convert`` passes the
trainer of its runtime: checkpoints, signals, loggers, non-finite guard).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from protperf.checkpoint.lightning_io import AtomicCheckpointIO
from protperf.checkpoint.load import SavedModel, build_model
from protperf.checkpoint.writer import write_checkpoint
from protperf.data.config import DataConfig
from protperf.data.datamodule import ProteinDataModule
from protperf.data.preparation.cache import ensure_prepared
from protperf.errors import ConfigError
from protperf.model.compat import merge_overrides
from protperf.structured import to_plain
from protperf.transfer.checks import (
    check_letters,
    check_output,
    check_source,
    lacking_letters,
    read_source,
)
from protperf.transfer.finetune import freeze_feature_projections
from protperf.transfer.module import ConversionModule, Score
from protperf.transfer.settings import (
    DEFAULT_ATTENTION,
    TRAINER_DEFAULTS,
    ConvertSettings,
    check_performer_attention,
)

#: Checkpoint key of the output's provenance (source, steps, scores).
CONVERT_KEY = "protperf_convert"


@dataclass
class ConversionPlan:
    """A checked conversion: the source, its objective, the Performer attention, the output."""

    source: str
    saved: SavedModel
    objective: str
    attention: dict[str, Any]
    output: Path
    data: DataConfig
    settings: ConvertSettings


@dataclass
class ConversionResult:
    """What a conversion reached. ``best``: the step written to ``output`` (None if the run was
    stopped by a signal before finishing: nothing written); ``steps``: steps trained."""

    output: str | None
    steps: int
    exact: Score | None
    zero_shot: Score | None
    best: Score | None
    target_recovery: float | None
    target_reached: bool
    stopped: bool = False

    @property
    def recovery(self) -> float:
        if self.best is None or self.exact is None or self.exact.accuracy <= 0:
            return math.nan
        return self.best.accuracy / self.exact.accuracy

    def summary_line(self) -> str:
        """``recovered 99.2 % of exact accuracy (0.852 / 0.859) in 600 steps, 7.1 CPU-min ->
        OUT`` (and, when the target was not reached, what it was)."""
        if self.best is None or self.exact is None:
            return f"stopped after {self.steps} steps; nothing written"
        line = (f"recovered {100 * self.recovery:.1f} % of exact accuracy "
                f"({self.best.accuracy:.3f} / {self.exact.accuracy:.3f}) in {self.best.step} "
                f"steps, {self.best.cpu_s / 60:.1f} CPU-min -> {self.output}")
        if self.target_recovery is not None and not self.target_reached:
            line += (f" (target {100 * self.target_recovery:.1f} % not reached in "
                     f"{self.steps} steps)")
        return line

    def as_dict(self) -> dict[str, Any]:
        plain = {k: (dataclasses.asdict(v) if isinstance(v, Score) else v)
                 for k, v in vars(self).items()}
        return {**plain, "recovery": self.recovery}


def plan_conversion(
    source: str | Path,
    output: str | Path,
    data: DataConfig | None = None,
    attention: Mapping[str, Any] | None = None,
    settings: ConvertSettings | None = None,
    objective: str | None = None,
    force: bool = False,
    mlm_data_keys: Sequence[str] = (),
) -> ConversionPlan:
    """Check everything a conversion needs before anything is written (see
    :mod:`protperf.transfer.checks`); prepares the data (into its cache) to check its
    letters against the source's vocabulary."""
    settings = settings or ConvertSettings()
    settings.validate()
    attention = merge_overrides(DEFAULT_ATTENTION, attention or {})
    check_performer_attention(attention)
    out = check_output(output, force)
    saved, record = read_source(source)
    source_objective = check_source(saved, source, objective, mlm_data_keys)
    data = data or DataConfig()
    data.validate()
    if not data.cross_protein_attention:
        raise ConfigError("data.cross_protein_attention=false is not supported by convert "
                          "(attention transfer compares whole windows)")
    prepared_dir, _ = ensure_prepared(data)
    check_letters(prepared_dir, lacking_letters(record), source, data.resolved_path())
    return ConversionPlan(str(source), saved, source_objective, attention, out, data, settings)


def build_student(plan: ConversionPlan) -> torch.nn.Module:
    """The source's network with the plan's Performer attention, random features drawn from
    ``convert.feature_seed`` (train mode, CPU)."""
    saved = dataclasses.replace(plan.saved, hyper_parameters={
        **plan.saved.hyper_parameters, "seed": plan.settings.feature_seed})
    return build_model(saved, model_overrides={"attention": plan.attention})


def default_trainer(options: Mapping[str, Any] | None = None) -> pl.Trainer:
    """A quiet CPU trainer with :data:`TRAINER_DEFAULTS` (no logger, no checkpoints)."""
    settings = {**TRAINER_DEFAULTS, "accelerator": "cpu", "devices": 1, "logger": False,
                "enable_checkpointing": False, "enable_progress_bar": False,
                "enable_model_summary": False, "num_sanity_val_steps": 0,
                "plugins": [AtomicCheckpointIO()], **(options or {})}
    return pl.Trainer(**settings)


def convert(
    source: str | Path,
    output: str | Path,
    data: DataConfig | None = None,
    attention: Mapping[str, Any] | None = None,
    settings: ConvertSettings | None = None,
    trainer: pl.Trainer | Mapping[str, Any] | None = None,
    ckpt_path: str | None = None,
    objective: str | None = None,
    force: bool = False,
    plan: ConversionPlan | None = None,
) -> ConversionResult:
    """Convert the exact-attention model ``source`` into a Performer written to ``output``.

    data: the fine-tune data (train split) and the held-out validation split (valid);
    attention: ``model.attention.*`` overrides (default favor_softmax, m = 256); settings:
    ``convert.*``; trainer: a Lightning trainer or keyword arguments of
    :func:`default_trainer`; ckpt_path: resume a run from its checkpoint; objective: the
    source's, or an error; force: replace an existing ``output``; plan: an already checked
    :func:`plan_conversion` (then the other inputs but ``trainer`` / ``ckpt_path`` are its).
    Raises ConfigError / DataError / CheckpointError in one line before anything is written.
    """
    plan = plan or plan_conversion(source, output, data, attention, settings, objective, force)
    if not isinstance(trainer, pl.Trainer):
        trainer = default_trainer(trainer)
    student = build_student(plan)
    module = ConversionModule(student, plan.settings, hyper_parameters(plan, student))
    datamodule = ProteinDataModule(plan.data, objective=plan.objective)
    datamodule.check_splits(["train", "valid"])
    with warnings.catch_warnings():  # the student trains in eval mode on purpose
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode")
        if ckpt_path is None:  # exact and zero-shot scores, logged at step 0
            trainer.validate(module, datamodule=datamodule, verbose=False)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    steps = trainer.global_step
    finished = module.target_reached or steps >= trainer.max_steps
    if not finished:  # a stop signal: the run resumes from its checkpoint
        return ConversionResult(None, steps, module.exact, module.zero_shot, None,
                                plan.settings.target_recovery, False, stopped=True)
    if module.latest is None or module.latest.step != steps:  # score the final step too
        trainer.validate(module, datamodule=datamodule, verbose=False)
    module.load_best()
    freeze_feature_projections(module.model)
    result = ConversionResult(str(plan.output), steps, module.exact, module.zero_shot,
                              module.best, plan.settings.target_recovery, module.target_reached)
    if trainer.is_global_zero:
        write_converted(module, plan, result)
    return result


def hyper_parameters(plan: ConversionPlan, network: torch.nn.Module) -> dict[str, Any]:
    """The source's hyper-parameters with the Performer's architecture and feature seed."""
    return {**plan.saved.hyper_parameters, "model": to_plain(network.config),
            "seed": plan.settings.feature_seed}


def write_converted(module: ConversionModule, plan: ConversionPlan,
                    result: ConversionResult) -> None:
    """The converted model as an ordinary checkpoint at ``plan.output``, through the one
    checkpoint writer (atomic, content-hashed, read back): the Performer architecture, the
    network's tensors (random features included), the source's task and the conversion's
    provenance (the one place a conversion writes its output)."""
    network = module.model
    hparams = dict(module.hparams)
    provenance = {"source": plan.source, "attention": dict(plan.attention),
                  "settings": to_plain(plan.settings),
                  **{k: v for k, v in result.as_dict().items() if k != "output"}}
    write_checkpoint(network, network.config, plan.output, task=hparams.get("task"),
                     optim=hparams.get("optim"), seed=int(hparams.get("seed", 0)),
                     global_step=result.best.step if result.best else result.steps,
                     extra={CONVERT_KEY: provenance}, overwrite=True, source=plan.source)
