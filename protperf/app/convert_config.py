"""Typed root of ``protperf-convert`` (``protperf/conf/convert.yaml``): light, imported at
start-up (no torch, no Lightning). Defaults live in :mod:`protperf.transfer.settings`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from protperf.checkpoint.overrides import AttentionOverrides, ModelOverrides
from protperf.cli.config import DivergenceConfig, TrainerConfig
from protperf.data.config import DataConfig
from protperf.errors import ConfigError, config_key
from protperf.model.config import OBJECTIVES
from protperf.transfer.settings import (
    DATA_DEFAULTS,
    DEFAULT_ATTENTION,
    TRAINER_DEFAULTS,
    ConvertSettings,
    check_performer_attention,
)


def performer_overrides() -> ModelOverrides:
    return ModelOverrides(attention=AttentionOverrides(**DEFAULT_ATTENTION))


@dataclass
class ConvertConfig:
    """Root of ``conf/convert.yaml``.

    checkpoint: the exact-attention source (a ``.ckpt`` file or an export directory).
    output: the converted checkpoint to write (an existing file only with ``force=true``).
    objective: the source's (``mlm`` / ``clm``), or null; another one is an error.
    model: ``model.attention.*`` (the Performer; every other key comes from the source).
    convert: how the Performer learns (:class:`~protperf.transfer.settings.ConvertSettings`).
    trainer / divergence / logger / callbacks / seed / ckpt_path / run_name: as ``train``'s
    (resume a run exactly with ``ckpt_path=last hydra.run.dir=<run dir>``).
    """

    checkpoint: str = MISSING
    output: str = MISSING
    force: bool = False
    objective: str | None = None
    data: DataConfig = field(default_factory=lambda: DataConfig(**DATA_DEFAULTS))
    model: ModelOverrides = field(default_factory=performer_overrides)
    convert: ConvertSettings = field(default_factory=ConvertSettings)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(**TRAINER_DEFAULTS))
    divergence: DivergenceConfig = field(default_factory=DivergenceConfig)
    logger: dict[str, Any] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)
    seed: int = 42
    ckpt_path: str | None = None
    run_name: str = "convert-${model.attention.kind}-m${model.attention.num_features}"
    output_dir: str = "outputs/convert"  # conf/convert.yaml sets ${hydra:runtime.output_dir}

    def validate(self, prefix: str = "") -> None:
        """Check every section; raises :class:`ConfigError` naming the full key."""
        self.data.validate(config_key(prefix, "data"))
        self.convert.validate(config_key(prefix, "convert"))
        self.divergence.validate(config_key(prefix, "divergence"))
        if self.model.dropout is not None:
            raise ConfigError(f"{config_key(prefix, 'model.dropout')}={self.model.dropout}: a "
                              "conversion keeps the source's architecture, only "
                              "model.attention.* may differ")
        check_performer_attention(vars(self.model.attention),
                                  config_key(prefix, "model.attention"))
        if self.objective is not None and self.objective not in OBJECTIVES:
            raise ConfigError(f"{config_key(prefix, 'objective')}={self.objective!r} is not "
                              f"one of {', '.join(OBJECTIVES)}")
