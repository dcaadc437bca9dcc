"""``protperf-analyze`` / ``scripts/analyze.py``: checkpoint -> attention vs BLOSUM62 outputs.

Writes figures (PNG + SVG), ``head_correlations.csv``, ``embedding_similarity.csv``,
``matrices.npz`` and ``summary.json`` into the run directory. Options:
``protperf/conf/analyze.yaml`` (e.g. ``methods=[embedding]``, ``figures=false``;
``run_dir=outputs/run`` or ``checkpoints=[a.ckpt,b.ckpt]`` for a learning curve:
``learning_curve.csv`` + ``figures/learning_curve.png``).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from protperf.analysis.curve import analyze_checkpoints
from protperf.analysis.pipeline import register_config, resolve_config, summary_line
from protperf.analysis.report import analyze
from protperf.app.cli import hydra_command
from protperf.app.wandb_figures import log_analysis_figures


@hydra_command("analyze", register_config)
def main(cfg: DictConfig) -> None:
    config = resolve_config(cfg)
    if config.checkpoints or config.run_dir:
        result = analyze_checkpoints(config)[-1]  # the summary line of the last checkpoint
    else:
        result = analyze(config)
    if config.wandb:
        log_analysis_figures(config.output_dir, OmegaConf.to_container(cfg, resolve=True))
    print(summary_line(result, cfg.output_dir), flush=True)
