"""Learning curve of the BLOSUM62 signal: the analysis over several checkpoints of one run.

``python scripts/analyze.py run_dir=outputs/run`` (or ``checkpoints=[a.ckpt,b.ckpt]``) analyzes
every checkpoint into ``<output_dir>/step<NNNNNN>/`` (the usual files) and writes
``learning_curve.csv`` -- one row per (step, method): Pearson / Spearman off-diagonal r with
BLOSUM62 and the permutation p -- and ``figures/learning_curve.{png,svg}``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from protperf.analysis.pipeline import analyze_model, analyzed_model
from protperf.analysis.plots import save_figure
from protperf.analysis.report import write_outputs
from protperf.checkpoint.atomic import atomic_path
from protperf.checkpoint.load import read_checkpoint

CURVE_COLUMNS = ["step", "checkpoint", "method", "pearson_offdiag", "pearson_offdiag_p",
                 "spearman_offdiag", "spearman_offdiag_p", "random_init_floor"]
FLOOR_KEYS = {"similarity": "pooled_floor", "similarity_best_head": "best_head_floor",
              "vig": "floor", "embedding": "floor"}


def checkpoint_step(path: str | Path) -> int:
    """The training step stored in a checkpoint (``global_step``; 0 if absent)."""
    return int(read_checkpoint(path, verify=False, mmap=True).get("global_step", 0))


def find_checkpoints(run_dir: str | Path) -> list[Path]:
    """Every ``*.ckpt`` of ``<run_dir>/checkpoints`` (or of ``run_dir`` itself), sorted by name."""
    run_dir = Path(run_dir)
    folder = run_dir / "checkpoints" if (run_dir / "checkpoints").is_dir() else run_dir
    if not folder.is_dir():
        raise FileNotFoundError(f"run_dir={run_dir} is not a directory")
    paths = sorted(folder.glob("*.ckpt"))
    if not paths:
        raise FileNotFoundError(f"no *.ckpt file in {folder}")
    return paths


def checkpoints_by_step(paths: list[str | Path]) -> list[tuple[int, Path]]:
    """(step, path) sorted by step; of several checkpoints of the same step (``last.ckpt`` and
    ``best-stepNNNNNN.ckpt``) the first in the given order that is not ``last.ckpt`` is kept."""
    chosen: dict[int, Path] = {}
    for path in map(Path, paths):
        step = checkpoint_step(path)
        if step not in chosen or chosen[step].name == "last.ckpt":
            chosen[step] = path
    return sorted(chosen.items())


def curve_rows(step: int, checkpoint: str | Path, summary: dict) -> list[dict]:
    """Rows of the learning curve for one analysis summary (``summary.json`` content):
    ``similarity`` (all heads pooled), ``similarity_best_head``, ``vig``, ``embedding``."""
    rows = []
    similarity = summary.get("similarity")
    sources = {}
    if similarity:
        sources["similarity"] = similarity["pooled"]
        sources["similarity_best_head"] = similarity["best_heads"][0]
    for method in ("vig", "embedding"):
        if summary.get(method):
            sources[method] = summary[method]
    for method, values in sources.items():
        row = {"step": step, "checkpoint": str(checkpoint), "method": method}
        row.update({c: values.get(c) for c in CURVE_COLUMNS[3:-1]})
        section = similarity if method.startswith("similarity") else values
        row["random_init_floor"] = section.get(FLOOR_KEYS[method])
        rows.append(row)
    return rows


def plot_learning_curve(curve: pd.DataFrame, column: str = "pearson_offdiag") -> Figure:
    """r with BLOSUM62 against the training step, one line per method."""
    figure, axis = plt.subplots(figsize=(6, 4))
    sns.lineplot(data=curve, x="step", y=column, hue="method", marker="o", ax=axis)
    axis.axhline(0.0, color="grey", linewidth=0.8)
    axis.set_ylabel(f"{column} with BLOSUM62")
    axis.set_title("BLOSUM62 signal during training")
    figure.tight_layout()
    return figure


def analyze_checkpoints(config) -> list:
    """Analyze every checkpoint of ``config.checkpoints`` / ``config.run_dir`` (an
    :class:`protperf.analysis.pipeline.AnalyzeConfig`); write the per-checkpoint outputs,
    ``learning_curve.csv`` and its figure; return the results in step order."""
    paths = list(config.checkpoints) or find_checkpoints(config.run_dir)
    out = Path(config.output_dir)
    results, rows = [], []
    for step, path in checkpoints_by_step(paths):
        single = dataclasses.replace(config, checkpoint=str(path), checkpoints=[], run_dir=None,
                                     output_dir=str(out / f"step{step:06d}"))
        null_runs = results[0].null_runs if results else None  # one floor for the whole run
        result = analyze_model(analyzed_model(single), single, null_runs=null_runs)
        result.summary["step"] = step
        write_outputs(result, single)
        results.append(result)
        rows += curve_rows(step, path, result.summary)
    curve = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "learning_curve.csv") as partial:
        curve.to_csv(partial, index=False)
    save_figure(plot_learning_curve(curve), out / "figures" / "learning_curve")
    plt.close("all")
    return results
