"""Typed configuration of the applications (roots of ``protperf/conf/train.yaml``, ...).

Each default lives here or in the library dataclasses it nests (``ModelConfig``,
``DataConfig`` ...); the YAML files hold only what differs. :func:`validate` checks the
relations between sections, with messages naming the keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protperf.data.config import DataConfig
from protperf.errors import ConfigError
from protperf.model.config import (
    OBJECTIVES,
    SCHEDULES,
    ModelConfig,
    OptimConfig,
    TaskConfig,
    validate_model,
)


@dataclass
class TrainerConfig:
    """Arguments passed to ``lightning.pytorch.Trainer`` (a curated, typed subset)."""

    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_steps: int = 200
    max_epochs: int = -1
    val_check_interval: Any = 100
    check_val_every_n_epoch: Any = None
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    num_sanity_val_steps: int = 0
    log_every_n_steps: int = 10
    gradient_clip_val: float = 0.5
    gradient_clip_algorithm: str = "norm"
    accumulate_grad_batches: int = 1
    deterministic: bool = False
    benchmark: bool | None = None
    enable_progress_bar: bool = True
    enable_model_summary: bool = True


@dataclass
class TrainConfig:
    """Root of ``conf/train.yaml``.

    data: the data pipeline (``conf/data/*.yaml``).  logger / callbacks: Hydra ``_target_``
    nodes instantiated into Lightning loggers and callbacks (any number, keyed by name).
    ckpt_path: resume training from this Lightning checkpoint (same step, optimizer, data
        position, masks); ``last``: the newest checkpoint of this run directory (what a
        requeued SLURM job uses without being told).
    init_from: start from these weights only (fresh optimizer and step), e.g. to fine-tune exact
        weights as a Performer.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: dict[str, Any] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)
    seed: int = 42
    ckpt_path: str | None = None
    init_from: str | None = None
    run_name: str = "${model.name}-${task.objective}"
    output_dir: str = "outputs/run"  # conf/train.yaml sets ${hydra:runtime.output_dir}
    test_after_fit: bool = False


def sequence_length(data: DataConfig) -> int:
    """Longest token sequence the data config can produce (window or per-protein crop)."""
    return data.window if data.concatenate else data.max_length


def validate(cfg: TrainConfig) -> None:
    """Check relations between keys of a full training config (raises :class:`ConfigError`)."""
    validate_model(cfg.model)
    if cfg.task.objective not in OBJECTIVES:
        raise ConfigError(
            f"task.objective={cfg.task.objective!r} is not one of {', '.join(OBJECTIVES)}"
        )
    if cfg.optim.schedule not in SCHEDULES:
        raise ConfigError(
            f"optim.schedule={cfg.optim.schedule!r} is not one of {', '.join(SCHEDULES)}"
        )
    if cfg.optim.lr <= 0:
        raise ConfigError(f"optim.lr={cfg.optim.lr} must be positive")
    if cfg.optim.warmup_steps < 0:
        raise ConfigError(f"optim.warmup_steps={cfg.optim.warmup_steps} must be >= 0")
    try:
        cfg.data.validate()  # the data pipeline's own checks name data.* keys
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if cfg.model.position == "learned":
        length = sequence_length(cfg.data)
        if length > cfg.model.max_position:
            key = "data.window" if cfg.data.concatenate else "data.max_length"
            raise ConfigError(
                f"{key}={length} is longer than the learned positional table "
                f"(model.max_position={cfg.model.max_position}); raise model.max_position or "
                f"use model.position=rotary"
            )
