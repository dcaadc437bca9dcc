"""Checkpoint + proteins -> similarity matrices, BLOSUM62 correlations, figures, CSV, JSON.

The logic behind ``scripts/analyze.py`` (config: ``conf/analyze.yaml`` mirrors
:class:`AnalyzeConfig`).  :func:`analyze_model` works on any in-memory model (notebooks);
:func:`protperf.analysis.report.analyze` loads a checkpoint first and writes the files.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from protperf.analysis.attention_maps import attention_maps
from protperf.analysis.blosum import head_correlations
from protperf.analysis.collect import ModelAttentionCollector
from protperf.analysis.embedding import embedding_similarity
from protperf.analysis.null_models import (
    FLOOR_PERCENTILE,
    calibrate_heads,
    floor,
    random_init_like,
)
from protperf.analysis.similarity import NORMALIZATIONS, SimilarityTotals
from protperf.analysis.vig import skip_reason, vig_similarity
from protperf.checkpoint.load import load_model
from protperf.checkpoint.overrides import ModelOverrides
from protperf.data.alphabet import ALPHABET
from protperf.data.batching import BatchConverter, protein_batches, window_batches
from protperf.data.proteins import Protein, read_proteins
from protperf.errors import ConfigError, config_key
from protperf.resources import SAMPLE_FASTA

log = logging.getLogger(__name__)
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


@dataclass
class AnalysisResult:
    """Everything :func:`write_outputs` writes."""

    totals: SimilarityTotals | None  # None when only methods=[embedding]
    head_table: pd.DataFrame | None
    similarity: np.ndarray | None  # (layers, heads, 20, 20)
    pooled: np.ndarray | None  # (20, 20)
    vig_correlation: pd.DataFrame | None
    vig_summary: dict | None
    embedding_similarity: pd.DataFrame | None
    embedding_summary: dict | None
    grid: np.ndarray  # (layers, heads, L, L)
    grid_protein: str
    grid_tokens: str
    summary: dict[str, Any]
    null_runs: list[AnalysisResult] = field(default_factory=list)  # the random-init models


def analyzed_model(config: AnalyzeConfig) -> nn.Module:
    """The model of ``config.checkpoint`` (a .ckpt or an export directory) with its
    ``model.*`` overrides, through :func:`protperf.checkpoint.load.load_model`."""
    if not config.checkpoint:
        raise ValueError(
            "a checkpoint is required: checkpoint=path/to/last.ckpt (or checkpoints=[a.ckpt,"
            "b.ckpt] or run_dir=outputs/run for a learning curve)"
        )
    return load_model(config.checkpoint, model_overrides=config.model.as_overrides())


def select_proteins(config: AnalyzeConfig, stats: Counter) -> Iterator[Protein]:
    """The proteins of ``config.data`` (the bundled sample by default), at most max_sequences."""
    data = config.data
    if data.path is None:
        path = SAMPLE_FASTA
    else:
        path = Path(data.path)
    proteins = read_proteins(path, data.split, data.on_invalid, stats)
    if data.max_sequences is not None:
        proteins = itertools.islice(proteins, data.max_sequences)
    return proteins


def analyze_model(
    model: nn.Module,
    config: AnalyzeConfig,
    proteins: Iterable[Protein] | None = None,
    null_runs: list[AnalysisResult] | None = None,
) -> AnalysisResult:
    """Run ``model`` over ``proteins`` (default: those of ``config.data``) and compare; with
    ``config.null_models``, also random-initialised copies of it (the floor).

    null_runs: the ``null_runs`` of an earlier result with the same architecture, proteins and
    config (the checkpoints of one run): reused instead of analyzing the random models again.
    """
    config.validate()
    stats: Counter = Counter()
    proteins = select_proteins(config, stats) if proteins is None else proteins
    if config.null_models:
        proteins = list(proteins)  # the random models see the same proteins
    result = _analyze(model, config, proteins, stats)
    if result.vig_summary is not None and "skipped" in result.summary["vig"]:
        log.warning("vig: %s", result.summary["vig"]["skipped"])
    if config.null_models:
        _add_random_init_floor(result, model, config, proteins, null_runs)
    return result


def _analyze(
    model: nn.Module, config: AnalyzeConfig, proteins: Iterable[Protein], stats: Counter
) -> AnalysisResult:
    device = torch.device(config.device)
    model = model.to(device).eval()
    collector = ModelAttentionCollector(
        model, config.block_size, vig="vig" in config.methods, vig_threshold=config.vig_threshold
    )
    grid_protein: Protein | None = None

    def remember(stream):
        nonlocal grid_protein
        for protein in stream:
            if grid_protein is None and config.protein in (None, protein.record_id):
                grid_protein = protein
            yield protein

    data = config.data
    limit = position_limit(model)
    if data.window:
        if limit is not None and data.window > limit:
            raise ValueError(
                f"data.window={data.window} is longer than the model's learned positional table "
                f"(model.max_position={limit})"
            )
        batches = window_batches(remember(proteins), data.batch_size, data.window, stats)
        tokens_per_row = data.window
    else:
        max_length = data.max_length if limit is None else min(data.max_length, limit)
        if max_length < data.max_length:
            log.info("cropping proteins to model.max_position=%d tokens", max_length)
        batches = protein_batches(remember(proteins), data.batch_size, max_length, stats)
        tokens_per_row = max_length
    progress = tqdm(total=data.max_sequences, unit="seq", desc="attention",
                    disable=not config.progress)
    attention_wanted = any(m in ATTENTION_METHODS for m in config.methods)
    with progress:
        for batch in batches:
            if attention_wanted:
                collector.add(batch.tokens.to(device), batch.attention_mask.to(device))
            progress.update(stats["analyzed"] - progress.n)
            if not attention_wanted:  # the embedding method needs one protein (the grid's)
                break
    if stats["analyzed"] == 0:
        raise ValueError(f"no protein to analyze in {data.path or 'the bundled sample'}")
    if grid_protein is None:
        raise ValueError(f"protein={config.protein!r} is not among the analyzed proteins")
    result = _compare(model, collector, config, stats, grid_protein)
    result.summary["data"]["tokens_per_row"] = tokens_per_row
    return result


def position_limit(model: nn.Module) -> int | None:
    """Longest input a model with learned positions accepts (None: no limit, e.g. rotary)."""
    config = getattr(model, "config", None)
    if getattr(config, "position", None) == "learned":
        return int(config.max_position)
    return None


def _compare(model, collector, config, stats, grid_protein) -> AnalysisResult:
    attention_wanted = any(m in ATTENTION_METHODS for m in config.methods)
    totals = collector.totals if attention_wanted else None
    head_table = similarity = pooled = vig_corr = vig_summary = None
    embedding_matrix = embedding_summary = None
    modules = collector.accumulator.totals
    summary: dict[str, Any] = {
        "checkpoint": config.checkpoint,
        "model": {
            "layers": modules.num_layers,
            "heads": modules.num_heads,
            "causal": modules.causal,
            "attention": sorted(set(collector.kinds)),
        },
        "data": {"path": config.data.path or "bundled sample", "stats": dict(stats),
                 "tokens": modules.tally.as_dict()},
        "methods": list(config.methods),
        "permutations": config.permutations,
    }
    if "similarity" in config.methods:
        similarity = totals.similarity(config.normalization)
        pooled = totals.pooled_similarity(config.normalization)
        layer_pooled = totals.pooled_similarity(config.normalization, per_layer=True)
        head_table = head_correlations(
            similarity, pooled, layer_pooled, n_permutations=config.permutations, seed=config.seed
        )
        summary["similarity"] = {
            "normalization": config.normalization,
            "pooled": _clean(head_table[head_table["kind"] == "pooled"].iloc[0].to_dict()),
            **_head_summary(head_table),
            "calibration": "BH q of the Mantel p (null_models=0: no random-init comparison)",
            "mean_excluded_key_mass": float(np.nanmean(totals.excluded_key_mass())),
        }
    if "vig" in config.methods:
        vig_corr, vig_summary = vig_similarity(totals.vig_counts, config.permutations, config.seed)
        vig_summary["threshold"] = config.vig_threshold
        reason = skip_reason(vig_summary, config.vig_threshold)
        if reason:
            vig_summary["skipped"] = reason
        summary["vig"] = _clean(vig_summary)
    if "embedding" in config.methods:
        embedding_matrix, embedding_summary = embedding_similarity(
            model, config.permutations, config.seed
        )
        summary["embedding"] = _clean(embedding_summary)
    grid_length = config.grid_max_length
    limit = position_limit(model)
    grid_length = grid_length if limit is None else min(grid_length, limit)
    residues = grid_protein.residues[: grid_length - 2]
    tokens, mask = BatchConverter()([residues])
    device = next(model.parameters()).device
    grid = attention_maps(model, tokens.to(device), mask.to(device))[:, 0].numpy()
    letters = "^" + "".join(ALPHABET.tokens[i] for i in residues) + "$"
    summary["grid_protein"] = grid_protein.record_id
    return AnalysisResult(totals, head_table, similarity, pooled, vig_corr, vig_summary,
                          embedding_matrix, embedding_summary, grid, grid_protein.record_id,
                          letters, summary)


def _head_summary(head_table: pd.DataFrame) -> dict:
    """best_heads (top 5 by pearson_offdiag, with their p / q values) and the number of heads
    with q < 0.05."""
    heads = head_table[head_table["kind"] == "head"]
    best = heads.head(5)[["layer", "head", "pearson_offdiag", "spearman_offdiag"]
                         + [c for c in heads.columns if c.startswith("pearson_offdiag_")
                            and not c.endswith("parametric")]]
    return {
        "best_heads": [_clean(r) for r in best.to_dict(orient="records")],
        "heads_significant_q05": int((heads["pearson_offdiag_q"] < 0.05).sum())
        if "pearson_offdiag_q" in heads else None,
    }


def _add_random_init_floor(
    result: AnalysisResult,
    model: nn.Module,
    config: AnalyzeConfig,
    proteins: list[Protein],
    runs: list[AnalysisResult] | None,
) -> None:
    """Analyze ``config.null_models`` random-initialised copies of ``model`` on ``proteins``
    (unless ``runs`` holds them already); put each headline's floor into the summary and
    calibrate the per-head q-values."""
    null_config = replace(config, permutations=0, null_models=0, progress=False)
    seeds = [config.seed + 1 + k for k in range(config.null_models)]
    if not runs or len(runs) != len(seeds):
        runs = []
        for seed in tqdm(seeds, desc="random-init models", unit="model",
                         disable=not config.progress):
            runs.append(_analyze(random_init_like(model, seed), null_config, proteins, Counter()))
    result.null_runs = runs
    summary = result.summary
    values: dict[str, Any] = {"models": len(seeds), "seeds": seeds,
                              "floor_percentile": FLOOR_PERCENTILE}
    if result.head_table is not None:
        null_heads = [run.head_table[run.head_table["kind"] == "head"] for run in runs]
        head_r = np.concatenate([h["pearson_offdiag"].to_numpy(dtype=float) for h in null_heads])
        values["pooled_r"] = _floats(run.summary["similarity"]["pooled"]["pearson_offdiag"]
                                     for run in runs)
        values["best_head_r"] = _floats(h["pearson_offdiag"].max() for h in null_heads)
        result.head_table = calibrate_heads(result.head_table, head_r)
        summary["similarity"].update(_head_summary(result.head_table))
        summary["similarity"]["calibration"] = (
            f"BH q of max(Mantel p, p against the {len(head_r)} heads of {len(seeds)} "
            "random-initialised models)")
        summary["similarity"]["pooled_floor"] = floor(values["pooled_r"])
        summary["similarity"]["best_head_floor"] = floor(values["best_head_r"])
    if result.vig_summary is not None:
        values["vig_r"] = _floats(run.vig_summary["pearson_offdiag"] for run in runs)
        summary["vig"]["floor"] = floor(values["vig_r"])
    if result.embedding_summary is not None:
        values["embedding_r"] = _floats(run.embedding_summary["pearson_offdiag"] for run in runs)
        summary["embedding"]["floor"] = floor(values["embedding_r"])
    summary["random_init"] = _clean(values)


def _floats(values: Iterable[Any]) -> list[float | None]:
    """JSON-safe list: floats, None for NaN / missing."""
    out = []
    for value in values:
        value = None if value is None else float(value)
        out.append(value if value is not None and np.isfinite(value) else None)
    return out


def _clean(record: dict) -> dict:
    """JSON-safe: numpy scalars to Python, NaN to None."""
    out = {}
    for key, value in record.items():
        if isinstance(value, np.generic):
            value = value.item()
        if value is pd.NA or (isinstance(value, float) and not np.isfinite(value)):
            value = None
        out[key] = value
    return out


def _fmt(value: Any) -> str:
    return "nan" if value is None else f"{value:.3g}"
