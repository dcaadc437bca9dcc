"""``protperf-analyze`` / ``scripts/analyze.py``: checkpoint -> attention vs BLOSUM62 outputs.

Writes figures (PNG + SVG), ``head_correlations.csv``, ``matrices.npz`` and ``summary.json``
into the run directory. Options: ``protperf/conf/analyze.yaml``.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from protperf.analysis.pipeline import analyze, register_config, resolve_config, summary_line
from protperf.app.cli import hydra_command
from protperf.app.wandb_figures import log_analysis_figures


@hydra_command("analyze", register_config)
def main(cfg: DictConfig) -> None:
    config = resolve_config(cfg)
    result = analyze(config)
    if config.wandb:
        log_analysis_figures(config.output_dir, OmegaConf.to_container(cfg, resolve=True))
    print(summary_line(result, cfg.output_dir), flush=True)
