"""Typed roots of the commands' configs (``protperf/conf/<command>.yaml``).

Each default lives here or in the library dataclasses it nests (``ModelConfig``,
``DataConfig``, ``AnalyzeConfig`` ...); the YAML files hold only what differs.
:mod:`protperf.cli.registry` registers every root with Hydra once; a root's ``validate``
checks its sections (each dataclass's ``validate(prefix)``) and the relations between them,
raising ConfigError with the full key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from protperf.checkpoint.overrides import ModelOverrides
from protperf.data.config import DataConfig
from protperf.errors import ConfigError, config_key
from protperf.model.config import ModelConfig, OptimConfig, TaskConfig


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
class DivergenceConfig:
    """What training does when its numbers go bad (:mod:`protperf.runtime.divergence`).

    skip_nonfinite_batches: batches with a NaN/inf loss or gradient norm skipped (no update)
        over the whole run before it stops; 0 = stop at the first.
    warn_nats_above_uniform: warn when val/loss exceeds ln(vocab_size), the loss of uniform
        guessing, by more than this many nats.
    """

    skip_nonfinite_batches: int = 0
    warn_nats_above_uniform: float = 1.0

    def validate(self, prefix: str = "divergence") -> None:
        if self.skip_nonfinite_batches < 0:
            raise ConfigError(f"{config_key(prefix, 'skip_nonfinite_batches')} must be >= 0, "
                              f"got {self.skip_nonfinite_batches}")


@dataclass
class TrainConfig:
    """Root of ``conf/train.yaml``.

    data: the data pipeline (``conf/data/*.yaml``).  logger / callbacks: Hydra ``_target_``
    nodes instantiated into Lightning loggers and callbacks (any number, keyed by name).
    ckpt_path: resume training from this Lightning checkpoint (same step, optimizer, data
        position, masks); ``last``: the newest checkpoint of this run directory (an error if
        there is none, except in a requeued SLURM job); ``last_or_new``: that, or a fresh
        start when there is none (what a requeued SLURM job uses without being told).
    divergence: what a non-finite loss / gradient does (stop, or skip a few batches) and when
        a diverging validation loss is warned about.
    init_from: start from these weights only (fresh optimizer and step), e.g. to fine-tune exact
        weights as a Performer.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    divergence: DivergenceConfig = field(default_factory=DivergenceConfig)
    logger: dict[str, Any] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)
    seed: int = 42
    ckpt_path: str | None = None
    init_from: str | None = None
    run_name: str = "${model.name}-${task.objective}"
    output_dir: str = "outputs/run"  # conf/train.yaml sets ${hydra:runtime.output_dir}
    test_after_fit: bool = False

    def validate(self, prefix: str = "") -> None:
        """Check every section (each names its full keys) and the relations between them;
        raises :class:`ConfigError`."""
        self.model.validate(config_key(prefix, "model"))
        self.task.validate(config_key(prefix, "task"))
        self.optim.validate(config_key(prefix, "optim"))
        self.data.validate(config_key(prefix, "data"))
        self.divergence.validate(config_key(prefix, "divergence"))
        if self.model.position == "learned":
            length = sequence_length(self.data)
            if length > self.model.max_position:
                key = "data.window" if self.data.concatenate else "data.max_length"
                raise ConfigError(
                    f"{key}={length} is longer than the learned positional table "
                    f"(model.max_position={self.model.max_position}); raise "
                    "model.max_position or use model.position=rotary"
                )


def sequence_length(data: DataConfig) -> int:
    """Longest token sequence the data config can produce (window or per-protein crop)."""
    return data.window if data.concatenate else data.max_length



@dataclass
class FinetuneConfig:
    """Train ``steps`` steps on the train split before evaluating (0 = evaluate as loaded)."""

    steps: int = 0
    lr: float | None = None
    warmup_steps: int = 0


@dataclass
class EvaluateConfig:
    """Root of ``conf/evaluate.yaml``."""

    checkpoints: list[str] = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelOverrides = field(default_factory=ModelOverrides)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    split: str = "test"
    seed: int = 42
    run_name: str = "evaluate"
    output_dir: str = "outputs/evaluate"
    table_name: str = "evaluation"

    def validate(self, prefix: str = "") -> None:
        """Check the data section and the split (the checkpoints' own settings are checked
        when they load); raises :class:`ConfigError` naming the full key."""
        self.data.validate(config_key(prefix, "data"))
        if self.split not in ("test", "val"):
            raise ConfigError(
                f"{config_key(prefix, 'split')}={self.split!r} is not one of test, val")
        if self.finetune.steps < 0:
            raise ConfigError(
                f"{config_key(prefix, 'finetune.steps')}={self.finetune.steps} must be >= 0")


@dataclass
class EmbedData:
    """The input FASTA (plain or .gz); None = the bundled sample."""

    path: str | None = None


@dataclass
class EmbedConfig:
    """Root of ``protperf/conf/embed.yaml``; see :mod:`protperf.inference.embed` for the policy."""

    checkpoint: str = MISSING  # a .ckpt file or an export directory (protperf-export)
    model: ModelOverrides = field(default_factory=ModelOverrides)  # e.g. model.attention.kind
    data: EmbedData = field(default_factory=EmbedData)
    output_dir: str = MISSING
    layers: list[int] = field(default_factory=lambda: [-1])
    include: list[str] = field(default_factory=lambda: ["mean"])  # mean, per_tok
    toks_per_batch: int = 4096
    format: str = "npy"  # npy (chunks + index) | npz | pt (one file per protein)
    proteins_per_file: int = 1000
    too_long: str = "crop"  # crop | error (models with a learned positional table)
    device: str = "cpu"
    progress: bool = True
    run_name: str = "embed"


@dataclass
class ScoreConfig:
    """Root of ``protperf/conf/score.yaml``; methods None = all of the checkpoint's objective."""

    checkpoint: str = MISSING  # a .ckpt file or an export directory (protperf-export)
    model: ModelOverrides = field(default_factory=ModelOverrides)  # e.g. model.attention.kind
    mutations: str = MISSING
    wildtype: str | None = None  # FASTA of the wild type, or use a mutated_sequence column
    wildtype_id: str | None = None  # the wild type's record id when the FASTA holds several
    output: str = MISSING
    methods: list[str] | None = None  # mlm: masked_marginal, wt_marginal, pll; clm: llr, ...
    batch_size: int = 32
    device: str = "cpu"
    progress: bool = True  # a bar per method on stderr (variants or positions scored)
    run_name: str = "score"


@dataclass
class GenerateConfig:
    """Root of ``protperf/conf/generate.yaml``."""

    checkpoint: str = MISSING  # a .ckpt file or an export directory (protperf-export)
    model: ModelOverrides = field(default_factory=ModelOverrides)  # e.g. model.attention.kind
    output: str = MISSING
    num_samples: int = 10
    max_length: int = 256  # residues, prompt included
    seed: int = 0
    temperature: float = 1.0  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    prompt: str = ""
    residues: str = "standard"  # standard: the 20 amino acids; all: also X B Z U O
    batch_size: int = 16
    device: str = "cpu"
    run_name: str = "generate"
