"""Write an analysis: figures (PNG + SVG), per-head CSV, matrices (.npz), JSON summary.

:func:`analyze` is what ``scripts/analyze.py`` runs for one checkpoint: load, analyze, write.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from protperf.analysis.pipeline import AnalysisResult, AnalyzeConfig, analyze_model, analyzed_model
from protperf.analysis.plots import (
    plot_attention_grid,
    plot_head_correlations,
    plot_similarity_scatter,
    plot_similarity_vs_blosum,
    protein_label,
    save_figure,
)
from protperf.checkpoint.atomic import atomic_open, atomic_path, write_text


def write_outputs(result: AnalysisResult, config: AnalyzeConfig) -> list[Path]:
    """Figures (PNG + SVG, unless ``config.figures`` is false), ``head_correlations.csv``,
    ``embedding_similarity.csv``, ``matrices.npz``, ``summary.json``."""
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = out / "figures"
    draw = config.figures
    written: list[Path] = []
    totals = result.totals
    if result.head_table is not None:
        table_path = out / "head_correlations.csv"
        with atomic_path(table_path) as partial:
            result.head_table.to_csv(partial, index=False)
        written.append(table_path)
    if result.head_table is not None and draw:
        label = f"{config.normalization} (symmetrized)"
        written += save_figure(plot_similarity_vs_blosum(
            result.pooled, "attention similarity, all heads pooled", config.order, label),
            figures / "similarity_pooled")
        written += save_figure(plot_similarity_scatter(
            result.pooled, "all heads pooled", value_label=label), figures / "scatter_pooled")
        best = result.head_table[result.head_table["kind"] == "head"].iloc[0]
        layer, head = int(best["layer"]), int(best["head"])
        title = f"best head: layer {layer} head {head}"
        floor = result.summary["similarity"].get("best_head_floor")
        if floor is not None:  # the same statistic for random-initialised models
            title += f" (random-init floor r = {floor:.2f})"
        written += save_figure(plot_similarity_vs_blosum(
            result.similarity[layer, head], title, config.order, label),
            figures / "similarity_best_head")
        written += save_figure(plot_similarity_scatter(
            result.similarity[layer, head], title, value_label=label),
            figures / "scatter_best_head")
        written += save_figure(
            plot_head_correlations(result.head_table), figures / "head_correlations"
        )
    vig_skipped = result.vig_summary is not None and "skipped" in result.summary.get("vig", {})
    if result.vig_correlation is not None and draw and not vig_skipped:
        written += save_figure(plot_similarity_vs_blosum(
            result.vig_correlation, "Vig et al.: correlation of attention shares across heads",
            config.order, "Pearson r"), figures / "vig_similarity")
        written += save_figure(plot_similarity_scatter(
            result.vig_correlation, "Vig et al. procedure", value_label="Pearson r"),
            figures / "vig_scatter")
    if result.embedding_similarity is not None:
        path = out / "embedding_similarity.csv"
        with atomic_path(path) as partial:
            result.embedding_similarity.to_csv(partial, index_label="amino_acid")
        written.append(path)
        if draw:
            title = "cosine similarity of the amino-acid token embeddings"
            written += save_figure(plot_similarity_vs_blosum(
                result.embedding_similarity, title, config.order, "cosine"),
                figures / "embedding_similarity")
            written += save_figure(plot_similarity_scatter(
                result.embedding_similarity, "token embeddings", value_label="cosine"),
                figures / "embedding_scatter")
    if draw:
        written += save_figure(
            plot_attention_grid(result.grid, result.grid_tokens,
                                f"{protein_label(result.grid_protein)}: attention of every "
                                "layer and head"),
            figures / "attention_grid",
        )
    matrices = {"grid": result.grid}
    if totals is not None:
        matrices.update(sums=totals.sums, pair_counts=totals.pair_counts, uniform=totals.uniform,
                        vig_counts=totals.vig_counts, vig_high=totals.vig_high)
    if result.similarity is not None:
        matrices.update(similarity=result.similarity, pooled=result.pooled)
    if result.vig_correlation is not None:
        matrices["vig_correlation"] = result.vig_correlation.to_numpy()
    if result.embedding_similarity is not None:
        matrices["embedding_similarity"] = result.embedding_similarity.to_numpy()
    with atomic_open(out / "matrices.npz", "wb") as handle:
        np.savez_compressed(handle, **matrices)
    written.append(out / "matrices.npz")
    summary = dict(result.summary, config=asdict(config),
                   outputs=[str(p.relative_to(out)) for p in written] + ["summary.json"])
    write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    written.append(out / "summary.json")
    plt.close("all")
    return written


def analyze(config: AnalyzeConfig) -> AnalysisResult:
    """Load ``config.checkpoint``, analyze, write everything to ``config.output_dir``.

    (``checkpoints`` / ``run_dir``: :func:`protperf.analysis.curve.analyze_checkpoints`.)
    """
    config.validate()
    if config.checkpoints or config.run_dir:
        raise ValueError(
            "checkpoints / run_dir are analyzed by protperf.analysis.curve.analyze_checkpoints"
        )
    result = analyze_model(analyzed_model(config), config)
    write_outputs(result, config)
    return result
