"""The typed config of the attention analysis (``protperf-analyze``; ``conf/analyze.yaml``
mirrors :class:`AnalyzeConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from protperf.analysis.similarity import NORMALIZATIONS
from protperf.checkpoint.overrides import ModelOverrides
from protperf.errors import ConfigError, config_key

METHODS = ("similarity", "vig", "embedding")
ATTENTION_METHODS = ("similarity", "vig")


@dataclass
class AnalysisDataConfig:
    """Which proteins to analyze.

    path: a FASTA file (plain or .gz) or a prepared directory; None = the bundled sample.
    split: the split of a prepared directory (train | valid | test).
    max_sequences: analyze at most this many proteins (None = all).
    max_length: tokens per protein including <cls>/<eos>; longer proteins are cropped (counted);
        at most the model's ``max_position`` for learned positions.
    window: if set, pack proteins back to back into rows of this many tokens instead.
    """

    path: str | None = None
    split: str = "test"
    max_sequences: int | None = 200
    max_length: int = 512
    window: int | None = None
    batch_size: int = 8
    on_invalid: str = "error"


@dataclass
class AnalyzeConfig:
    """Root of ``conf/analyze.yaml``.

    checkpoint: a training checkpoint (``.ckpt``); ``report.analyze`` needs it (or ``checkpoints``
        / ``run_dir``: :func:`protperf.analysis.curve.analyze_checkpoints`).
    checkpoints / run_dir: several checkpoints of one run (or every ``*.ckpt`` of
        ``<run_dir>/checkpoints``): each is analyzed into ``<output_dir>/step<NNNNNN>/`` and the
        correlations per step go to ``learning_curve.csv`` + a figure
        (:mod:`protperf.analysis.curve`).
    model: analyze the weights under another attention, e.g. ``model.attention.kind=favor_relu``
        for exact-Transformer weights as a Performer (:class:`ModelOverrides`; null = as
        trained).
    methods: ``similarity`` (attention mass, normalized), ``vig`` (Vig et al. 2020) and/or
        ``embedding`` (cosine similarity of the amino-acid token embeddings; needs no data).
    normalization: log_odds | marginal_log_odds | uniform | mean (protperf.analysis.similarity).
    permutations: label permutations of the Mantel test (0 = none).
    null_models: freshly initialised models of the same architecture analyzed on the same
        proteins: the random-init floor beside every headline number and the per-head p-value
        against random initialisation (:mod:`protperf.analysis.null_models`). Each one costs
        one more pass over the proteins (3: the analysis takes about 4 times as long); 0 = off.
    order: heatmap order, ``alphabet`` or ``clustered``.
    protein: record id of the protein whose layers x heads grid is drawn (null = the first).
    grid_max_length: crop that protein to this many tokens for the grid.
    figures: write the PNG/SVG figures (false: tables, matrices and summary only).
    wandb: also log the PNG figures to a wandb run in ``<output_dir>/wandb`` (offline unless
        ``WANDB_MODE`` says otherwise; :mod:`protperf.reporting.wandb_figures`).
    """

    checkpoint: str | None = None
    checkpoints: list[str] = field(default_factory=list)
    run_dir: str | None = None
    model: ModelOverrides = field(default_factory=ModelOverrides)
    data: AnalysisDataConfig = field(default_factory=AnalysisDataConfig)
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    normalization: str = "log_odds"
    vig_threshold: float = 0.1
    permutations: int = 1000
    null_models: int = 3
    seed: int = 0
    block_size: int = 256
    order: str = "alphabet"
    protein: str | None = None
    grid_max_length: int = 48
    device: str = "cpu"
    progress: bool = True
    figures: bool = True
    wandb: bool = False
    output_dir: str = "outputs/analyze"

    def validate(self, prefix: str = "") -> None:
        """Raise :class:`ConfigError` naming the full key of a bad value (a root: prefix "")."""

        def key(name: str) -> str:
            return config_key(prefix, name)

        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ConfigError(
                f"{key('methods')}={list(self.methods)} must be a non-empty subset of "
                f"{list(METHODS)}"
            )
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"{key('normalization')}={self.normalization!r} is not one of "
                f"{', '.join(NORMALIZATIONS)}"
            )
        if self.order not in ("alphabet", "clustered"):
            raise ConfigError(f"{key('order')}={self.order!r} must be 'alphabet' or 'clustered'")
        if not 0.0 < self.vig_threshold < 1.0:
            raise ConfigError(
                f"{key('vig_threshold')} must be in (0, 1), got {self.vig_threshold}"
            )
        if self.checkpoints and self.run_dir:
            raise ConfigError(
                f"give {key('checkpoints')}=[...] or {key('run_dir')}=..., not both"
            )
        if self.permutations < 0 or self.block_size < 1 or self.grid_max_length < 3:
            raise ConfigError(f"{key('permutations')} >= 0, {key('block_size')} >= 1 and "
                              f"{key('grid_max_length')} >= 3 needed")
        if self.null_models < 0:
            raise ConfigError(f"{key('null_models')} must be >= 0, got {self.null_models}")
