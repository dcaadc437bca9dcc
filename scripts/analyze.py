"""Attention analysis of a checkpoint: ``python scripts/analyze.py checkpoint=path/last.ckpt``.

Writes figures (PNG + SVG), ``head_correlations.csv``, ``matrices.npz`` and ``summary.json``
into the run directory.  Options: ``conf/analyze.yaml`` (e.g. ``data.path=my.fasta``,
``attention_kind=favor_relu``, ``methods=[vig]``, ``order=clustered``).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from protperf.analysis.pipeline import analyze, register_config, resolve_config, summary_line  # noqa: E402

register_config()


@hydra.main(version_base="1.3", config_path="../conf", config_name="analyze")
def main(cfg: DictConfig) -> None:
    config = resolve_config(cfg)
    result = analyze(config)
    if config.wandb:
        from protperf.app.wandb_figures import log_analysis_figures

        log_analysis_figures(config.output_dir, OmegaConf.to_container(cfg, resolve=True))
    print(summary_line(result, cfg.output_dir), flush=True)


if __name__ == "__main__":
    main()
