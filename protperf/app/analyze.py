"""``protperf-analyze`` / ``scripts/analyze.py``: checkpoint -> attention vs BLOSUM62 outputs.

Writes figures (PNG + SVG), ``head_correlations.csv``, ``embedding_similarity.csv``,
``matrices.npz`` and ``summary.json`` into the run directory. Options:
``protperf/conf/analyze.yaml`` (e.g. ``methods=[embedding]``, ``figures=false``;
``run_dir=outputs/run`` or ``checkpoints=[a.ckpt,b.ckpt]`` for a learning curve:
``learning_curve.csv`` + ``figures/learning_curve.png``).
"""

from __future__ import annotations

from protperf.analysis.config import AnalyzeConfig
from protperf.analysis.curve import analyze_checkpoints
from protperf.analysis.report import analyze
from protperf.analysis.summary import summary_line
from protperf.cli.command import command
from protperf.reporting.wandb_figures import log_analysis_figures
from protperf.structured import to_plain


@command("analyze")
def main(config: AnalyzeConfig) -> None:
    if config.checkpoints or config.run_dir:
        result = analyze_checkpoints(config)[-1]  # the summary line of the last checkpoint
    else:
        result = analyze(config)
    if config.wandb:
        log_analysis_figures(config.output_dir, to_plain(config))
    print(summary_line(result, config.output_dir), flush=True)
