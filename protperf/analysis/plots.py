"""Seaborn figures of attention and amino-acid similarity; :func:`save_figure` writes PNG + SVG.

Functions return matplotlib Figures and never pick a backend: scripts select ``Agg``,
notebooks show the figures inline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from scipy.cluster import hierarchy

from protperf.analysis.blosum import blosum62, correlate, triangle_indices
from protperf.analysis.residues import AMINO_ACIDS
from protperf.checkpoint.atomic import atomic_path

FORMATS = ("png", "svg")


def save_figure(
    figure: Figure, path_stem: str | Path, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Save ``figure`` as ``{path_stem}.png`` and ``.svg`` (parents created, each file written
    atomically); returns the paths."""
    stem = Path(path_stem)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        with atomic_path(path, "figure") as partial:
            figure.savefig(partial, dpi=150, bbox_inches="tight", format=fmt)
        paths.append(path)
    return paths


def clustered_order(reference: pd.DataFrame | None = None) -> str:
    """Amino acids ordered by average-linkage clustering of BLOSUM62 rows (similar adjacent)."""
    reference = blosum62() if reference is None else reference
    linkage = hierarchy.linkage(reference.to_numpy(), method="average", metric="euclidean")
    return "".join(reference.index[i] for i in hierarchy.leaves_list(linkage))


def _as_frame(matrix: np.ndarray | pd.DataFrame, order: str) -> pd.DataFrame:
    if isinstance(matrix, pd.DataFrame):
        frame = matrix
    else:
        frame = pd.DataFrame(matrix, index=list(AMINO_ACIDS), columns=list(AMINO_ACIDS))
    return frame.loc[list(order), list(order)]


def _order(order: str) -> str:
    if order == "alphabet":
        return AMINO_ACIDS
    if order == "clustered":
        return clustered_order()
    if sorted(order) != sorted(AMINO_ACIDS):
        raise ValueError(f"order must be 'alphabet', 'clustered' or a permutation of {AMINO_ACIDS}")
    return order


def plot_similarity_vs_blosum(
    similarity: np.ndarray | pd.DataFrame,
    title: str = "attention similarity",
    order: str = "alphabet",
    value_label: str = "log2 odds",
) -> Figure:
    """Heatmap of a (20, 20) similarity matrix beside BLOSUM62, rows/columns in the same order.

    order: ``alphabet`` (ACDEFGHIKLMNPQRSTVWY), ``clustered`` (BLOSUM62 clustering) or an explicit
    permutation of the 20 letters.
    """
    letters = _order(order)
    frame = _as_frame(similarity, letters)
    reference = blosum62().loc[list(letters), list(letters)]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5))
    finite = frame.to_numpy()[np.isfinite(frame.to_numpy())]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    labels = list(letters)  # explicit labels: seaborn skips its costly label-density check
    sns.heatmap(frame, ax=left, cmap="RdBu_r", center=0, vmin=-bound, vmax=bound, square=True,
                xticklabels=labels, yticklabels=labels, cbar_kws={"label": value_label})
    left.set_title(title)
    sns.heatmap(reference, ax=right, cmap="RdBu_r", center=0, square=True,
                xticklabels=labels, yticklabels=labels, cbar_kws={"label": "BLOSUM62 score"})
    right.set_title("BLOSUM62")
    for axis in (left, right):
        axis.set_xlabel("key amino acid")
        axis.set_ylabel("query amino acid")
    figure.tight_layout()
    return figure


def plot_similarity_scatter(
    similarity: np.ndarray | pd.DataFrame,
    title: str = "attention similarity vs BLOSUM62",
    subset: str = "offdiag",
    value_label: str = "log2 odds",
) -> Figure:
    """Scatter of the lower-triangle entries of a (20, 20) matrix against BLOSUM62 scores."""
    frame = _as_frame(similarity, AMINO_ACIDS).to_numpy()
    reference = blosum62().to_numpy()
    rows, cols = triangle_indices(len(AMINO_ACIDS), subset)
    data = pd.DataFrame({
        "BLOSUM62": reference[rows, cols],
        value_label: frame[rows, cols],
        "diagonal": rows == cols,
    })
    data = data[np.isfinite(data[value_label])]
    pearson = correlate(frame, reference, subset, "pearson")["r"]
    spearman = correlate(frame, reference, subset, "spearman")["r"]
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    sns.regplot(data=data, x="BLOSUM62", y=value_label, ax=axis, x_jitter=0.15,
                scatter_kws={"s": 14, "alpha": 0.6}, line_kws={"color": "black"})
    axis.set_title(f"{title}\nPearson {pearson:.2f}, Spearman {spearman:.2f} ({subset})")
    figure.tight_layout()
    return figure


def protein_label(record_id: str) -> str:
    """A protein's name for titles: the entry name of a UniProt id (``sp|P00974|BPT1_BOVIN`` ->
    ``BPT1_BOVIN``), otherwise the record id itself."""
    parts = record_id.split("|")
    if len(parts) == 3 and parts[0] in ("sp", "tr") and parts[2]:
        return parts[2]
    return record_id


def residue_ticks(residues: str, max_labels: int = 60) -> tuple[np.ndarray, list[str]]:
    """Tick positions and labels for L token letters: every letter when L <= max_labels,
    otherwise every k-th (k = ceil(L / max_labels)) labelled with its letter and 0-based
    token position (e.g. ``K16``), so that long proteins stay readable."""
    length = len(residues)
    if length <= max_labels:
        return np.arange(length), list(residues)
    step = int(np.ceil(length / max_labels))
    ticks = np.arange(0, length, step)
    return ticks, [f"{residues[i]}{i}" for i in ticks]


def plot_attention_grid(
    attention: np.ndarray,
    residues: str | None = None,
    title: str = "",
    max_labels: int = 60,
) -> Figure:
    """Layers x heads grid of attention maps for one protein, on one colour scale.

    attention: (layers, heads, L, L) one sequence's attention (rows = queries, columns = keys).
    residues: the L token letters: tick labels (every k-th one beyond max_labels,
        :func:`residue_ticks`).
    The colour bar runs from 0 to the 99.5th percentile of all weights (larger ones saturate),
    so that diffuse heads stay visible beside sharp ones.
    """
    attention = np.asarray(attention)
    if attention.ndim != 4 or attention.shape[-1] != attention.shape[-2]:
        raise ValueError(f"attention must be (layers, heads, L, L), got {attention.shape}")
    layers, heads, length = attention.shape[:3]
    if residues is not None and len(residues) != length:
        raise ValueError(f"{len(residues)} residue labels for attention of length {length}")
    ticks, labels = residue_ticks(residues, max_labels) if residues is not None else ([], [])
    size = 2.2 if length <= 80 else 3.0
    figure, axes = plt.subplots(layers, heads, figsize=(size * heads + 1, size * layers + 0.6),
                                squeeze=False, layout="constrained")
    # imshow rather than seaborn.heatmap: seaborn redraws the whole figure on every call to check
    # tick-label overlap, which is quadratic in the number of panels (64 for 8 x 8 heads).
    colormap = sns.color_palette("rocket", as_cmap=True)
    top = float(np.percentile(attention, 99.5)) or 1.0
    fontsize = 5 if len(labels) > 30 else 6
    for layer in range(layers):
        for head in range(heads):
            axis = axes[layer, head]
            image = axis.imshow(attention[layer, head], cmap=colormap, vmin=0, vmax=top,
                                interpolation="nearest")
            axis.set_title(f"layer {layer} head {head}", fontsize=8)
            bottom, left = layer == layers - 1, head == 0
            axis.set_xticks(ticks if bottom else [])
            axis.set_yticks(ticks if left else [])
            if bottom:  # keys along the bottom row
                axis.set_xticklabels(labels, fontsize=fontsize, rotation=90)
                axis.set_xlabel("key")
            if left:  # queries down the left column
                axis.set_yticklabels(labels, fontsize=fontsize)
                axis.set_ylabel("query")
            axis.tick_params(length=0)
    figure.colorbar(image, ax=axes, shrink=0.6, extend="max", label="attention weight")
    if title:
        figure.suptitle(title)
    return figure


def plot_head_correlations(table: pd.DataFrame, column: str = "pearson_offdiag") -> Figure:
    """Layers x heads heatmap of one correlation column of :func:`head_correlations`' table."""
    heads = table[table["kind"] == "head"]
    grid = heads.pivot(index="layer", columns="head", values=column).sort_index()
    figure, axis = plt.subplots(figsize=(1 + 0.7 * grid.shape[1], 1 + 0.5 * grid.shape[0]))
    sns.heatmap(grid, ax=axis, cmap="RdBu_r", center=0, annot=True, fmt=".2f",
                annot_kws={"fontsize": 7}, cbar_kws={"label": column})
    axis.set_title(f"{column} with BLOSUM62 per head")
    figure.tight_layout()
    return figure
