"""``protperf-analyze`` / ``scripts/analyze.py``: checkpoint -> attention vs BLOSUM62 outputs.

Writes figures (PNG + SVG), ``head_correlations.csv``, ``embedding_similarity.csv``,
``matrices.npz`` and ``summary.json`` into the run directory. Options:
``protperf/conf/analyze.yaml`` (e.g. ``methods=[embedding]``, ``figures=false``;
``run_dir=outputs/run`` or ``checkpoints=[a.ckpt,b.ckpt]`` for a learning curve:
``learning_curve.csv`` + ``figures/learning_curve.png``).
"""

from __future__ import annotations

from typing import Any

from protperf.analysis.curve import analyze_checkpoints
from protperf.analysis.pipeline import AnalysisResult, AnalyzeConfig
from protperf.analysis.report import analyze
from protperf.cli.command import command
from protperf.reporting.wandb_figures import log_analysis_figures
from protperf.structured import to_plain


def summary_line(result: AnalysisResult, output_dir: str) -> str:
    """One line for the terminal: pooled and Vig correlations with BLOSUM62, output folder."""
    stats = result.summary["data"]["stats"]
    parts = ["[protperf analyze]", f"proteins={stats.get('analyzed', 0)}"]
    similarity = result.summary.get("similarity")
    if similarity:
        pooled = similarity["pooled"]
        parts.append(
            f"pooled pearson_offdiag={_fmt(pooled.get('pearson_offdiag'))} "
            f"(p={_fmt(pooled.get('pearson_offdiag_p'))}"
            f"{floor_text(similarity, 'pooled_floor')})"
        )
        best = similarity["best_heads"][0]
        parts.append(
            f"best head L{best['layer']}H{best['head']}={_fmt(best.get('pearson_offdiag'))} "
            f"(q={_fmt(best.get('pearson_offdiag_q'))}"
            f"{floor_text(similarity, 'best_head_floor')}; "
            f"{similarity['heads_significant_q05']} heads q<0.05)"
        )
    vig = result.summary.get("vig")
    if vig and "skipped" in vig:
        parts.append(f"vig {vig['skipped'].split(':')[0]} ({vig['heads_used']} heads usable)")
    elif vig:
        parts.append(
            f"vig pearson_offdiag={_fmt(vig.get('pearson_offdiag'))} "
            f"(p={_fmt(vig.get('pearson_offdiag_p'))}{floor_text(vig, 'floor')})"
        )
    embedding = result.summary.get("embedding")
    if embedding:
        parts.append(
            f"embedding pearson_offdiag={_fmt(embedding.get('pearson_offdiag'))} "
            f"(p={_fmt(embedding.get('pearson_offdiag_p'))}{floor_text(embedding, 'floor')})"
        )
    return " ".join(parts) + f" -> {output_dir}"


def floor_text(section: dict, key: str) -> str:
    """``, random-init floor 0.21`` when the analysis ran null models (summary key present);
    what happened when none of them gave a finite correlation (the floor is undefined)."""
    if key not in section:
        return ""
    if section[key] is None:
        return ", no random-init floor: no random-init model gave a finite r"
    return f", random-init floor {_fmt(section[key])}"


def _fmt(value: Any) -> str:
    return "nan" if value is None else f"{value:.3g}"


@command("analyze")
def main(config: AnalyzeConfig) -> None:
    if config.checkpoints or config.run_dir:
        result = analyze_checkpoints(config)[-1]  # the summary line of the last checkpoint
    else:
        result = analyze(config)
    if config.wandb:
        log_analysis_figures(config.output_dir, to_plain(config))
    print(summary_line(result, config.output_dir), flush=True)
