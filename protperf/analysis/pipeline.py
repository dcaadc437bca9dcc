"""Checkpoint + proteins -> similarity matrices, BLOSUM62 correlations, figures, CSV, JSON.

The logic behind ``scripts/analyze.py`` (config: ``conf/analyze.yaml`` mirrors
:class:`~protperf.analysis.config.AnalyzeConfig`; the summary's JSON and its terminal line:
:mod:`protperf.analysis.summary`).  :func:`analyze_model` works on any in-memory model (notebooks);
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
from protperf.analysis.config import ATTENTION_METHODS, AnalyzeConfig
from protperf.analysis.embedding import embedding_similarity
from protperf.analysis.null_models import (
    FLOOR_PERCENTILE,
    calibrate_heads,
    floor,
    random_init_like,
)
from protperf.analysis.similarity import SimilarityTotals
from protperf.analysis.summary import head_summary, json_floats, json_record
from protperf.analysis.vig import skip_reason, vig_similarity
from protperf.checkpoint.load import load_model
from protperf.data.alphabet import ALPHABET
from protperf.data.batching import BatchConverter, protein_batches, window_batches
from protperf.data.proteins import Protein, read_proteins
from protperf.resources import SAMPLE_FASTA

log = logging.getLogger(__name__)
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
            "pooled": json_record(head_table[head_table["kind"] == "pooled"].iloc[0].to_dict()),
            **head_summary(head_table),
            "calibration": "BH q of the Mantel p (null_models=0: no random-init comparison)",
            "mean_excluded_key_mass": float(np.nanmean(totals.excluded_key_mass())),
        }
    if "vig" in config.methods:
        vig_corr, vig_summary = vig_similarity(totals.vig_counts, config.permutations, config.seed)
        vig_summary["threshold"] = config.vig_threshold
        reason = skip_reason(vig_summary, config.vig_threshold)
        if reason:
            vig_summary["skipped"] = reason
        summary["vig"] = json_record(vig_summary)
    if "embedding" in config.methods:
        embedding_matrix, embedding_summary = embedding_similarity(
            model, config.permutations, config.seed
        )
        summary["embedding"] = json_record(embedding_summary)
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
        values["pooled_r"] = json_floats(run.summary["similarity"]["pooled"]["pearson_offdiag"]
                                     for run in runs)
        values["best_head_r"] = json_floats(h["pearson_offdiag"].max() for h in null_heads)
        result.head_table = calibrate_heads(result.head_table, head_r)
        summary["similarity"].update(head_summary(result.head_table))
        summary["similarity"]["calibration"] = (
            f"BH q of max(Mantel p, p against the {len(head_r)} heads of {len(seeds)} "
            "random-initialised models)")
        summary["similarity"]["pooled_floor"] = floor(values["pooled_r"])
        summary["similarity"]["best_head_floor"] = floor(values["best_head_r"])
    if result.vig_summary is not None:
        values["vig_r"] = json_floats(run.vig_summary["pearson_offdiag"] for run in runs)
        summary["vig"]["floor"] = floor(values["vig_r"])
    if result.embedding_summary is not None:
        values["embedding_r"] = json_floats(
            run.embedding_summary["pearson_offdiag"] for run in runs)
        summary["embedding"]["floor"] = floor(values["embedding_r"])
    summary["random_init"] = json_record(values)
