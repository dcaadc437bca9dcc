"""Typed configuration of the language models and their training (mirrored by ``conf/``).

The YAML files under ``conf/model``, ``conf/task``, ``conf/trainer`` ... are merged into these
dataclasses by Hydra (see :mod:`protperf.model.schema`), so an unknown key or a wrong type is
rejected by OmegaConf, and :func:`validate` checks the relations between keys (heads dividing
the width, the window fitting the positional table, ...) with messages naming the keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protperf.attention import ATTENTION_KINDS, AttentionConfig
from protperf.errors import ConfigError

POSITION_KINDS = ("learned", "rotary", "none")
OBJECTIVES = ("mlm", "clm")
SCHEDULES = ("cosine", "linear", "constant")


@dataclass
class ModelConfig:
    """Architecture of the Transformer / Performer language model.

    name: the model's name in tables and run directories (``conf/model/<name>.yaml``).
    dim: model width D.  num_heads: H (must divide D).  num_layers: number of blocks.
    ffn_dim: hidden width of the GELU feed-forward network.
    dropout: dropout on embeddings, attention output and feed-forward output.
    position: ``learned`` absolute positions (as in the Performer paper), ``rotary`` (RoPE on
        queries/keys) or ``none``.
    max_position: size of the learned positional table; inputs longer than this are rejected.
    vocab_size: must match the alphabet (checked when loading a checkpoint).
    tie_embeddings: share the LM head's weight with the token embedding.
    attention: which attention each block computes (exact, Performer-Softmax, Performer-ReLU).
    """

    name: str = "performer_relu"
    dim: int = 128
    num_heads: int = 4
    num_layers: int = 2
    ffn_dim: int = 512
    dropout: float = 0.1
    position: str = "learned"
    max_position: int = 8192
    vocab_size: int = 30
    tie_embeddings: bool = True
    layer_norm_eps: float = 1e-5
    attention: AttentionConfig = field(default_factory=lambda: AttentionConfig(kind="favor_relu"))


@dataclass
class TaskConfig:
    """The training objective.

    objective: ``mlm`` (bidirectional masked LM, accuracy on masked tokens) or ``clm``
        (unidirectional causal LM, accuracy on next tokens).
    """

    objective: str = "mlm"

    @property
    def causal(self) -> bool:
        return self.objective == "clm"


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then decay (per optimizer step).

    schedule: ``cosine`` or ``linear`` decay to ``min_lr_ratio * lr`` at the last step, or
        ``constant`` after warm-up.
    """

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    weight_decay: float = 0.1
    warmup_steps: int = 50
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1


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
    ckpt_path: resume training from this Lightning checkpoint (same step, optimizer, RNG).
    init_from: start from these weights only (fresh optimizer and step), e.g. to fine-tune exact
        weights as a Performer.
    """

    data: Any = None  # protperf.data.config.DataConfig; typed in protperf.model.schema
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


def sequence_length(data: Any) -> int:
    """Longest token sequence the data config can produce (window or per-protein crop)."""
    return int(data.window if getattr(data, "concatenate", False) else data.max_length)


def validate_model(model: ModelConfig) -> None:
    """Check a model config; raise :class:`ConfigError` naming the offending ``model.*`` key."""
    for key in ("dim", "num_heads", "num_layers", "ffn_dim", "vocab_size", "max_position"):
        if getattr(model, key) <= 0:
            raise ConfigError(f"model.{key}={getattr(model, key)} must be positive")
    if model.dim % model.num_heads:
        raise ConfigError(
            f"model.num_heads={model.num_heads} does not divide model.dim={model.dim}"
        )
    if model.position not in POSITION_KINDS:
        raise ConfigError(
            f"model.position={model.position!r} is not one of {', '.join(POSITION_KINDS)}"
        )
    if model.position == "rotary" and (model.dim // model.num_heads) % 2:
        raise ConfigError(
            f"model.position=rotary needs an even head size, got model.dim/model.num_heads="
            f"{model.dim // model.num_heads}"
        )
    if not 0.0 <= model.dropout < 1.0:
        raise ConfigError(f"model.dropout={model.dropout} must be in [0, 1)")
    kind = model.attention.kind
    if kind not in ATTENTION_KINDS:
        raise ConfigError(
            f"model.attention.kind={kind!r} is not one of {', '.join(ATTENTION_KINDS)}"
        )


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
    if cfg.data is not None and hasattr(cfg.data, "validate"):
        try:
            cfg.data.validate()  # the data pipeline's own checks name data.* keys
        except ValueError as error:
            raise ConfigError(str(error)) from None
    if cfg.data is not None and cfg.model.position == "learned":
        length = sequence_length(cfg.data)
        if length > cfg.model.max_position:
            key = "data.window" if getattr(cfg.data, "concatenate", False) else "data.max_length"
            raise ConfigError(
                f"{key}={length} is longer than the learned positional table "
                f"(model.max_position={cfg.model.max_position}); raise model.max_position or "
                f"use model.position=rotary"
            )
