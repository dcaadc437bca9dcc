"""``protperf-analyze`` / ``scripts/analyze.py``: checkpoint -> attention vs BLOSUM62 outputs.

Writes figures (PNG + SVG), ``head_correlations.csv``, ``embedding_similarity.csv``,
``matrices.npz`` and ``summary.json`` into the run directory. Options:
``protperf/conf/analyze.yaml`` (e.g. ``methods=[embedding]``, ``figures=false``;
``run_dir=outputs/run`` or ``checkpoints=[a.ckpt,b.ckpt]`` for a learning curve:
``learning_curve.csv`` + ``figures/learning_curve.png``).
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from protperf.analysis.curve import analyze_checkpoints
from protperf.analysis.pipeline import AnalysisResult, AnalyzeConfig
from protperf.analysis.report import analyze
from protperf.app.cli import hydra_command
from protperf.app.wandb_figures import log_analysis_figures
from protperf.errors import ConfigError
from protperf.structured import to_dataclass


def register_config() -> None:
    """Register :class:`AnalyzeConfig` as Hydra's ``analyze_schema`` (types conf/analyze.yaml)."""
    ConfigStore.instance().store(name="analyze_schema", node=AnalyzeConfig)


def resolve_config(cfg: DictConfig) -> AnalyzeConfig:
    """Hydra DictConfig -> validated :class:`AnalyzeConfig` (errors name the key)."""
    config = to_dataclass(AnalyzeConfig, cfg)
    try:
        config.validate()
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return config


def summary_line(result: AnalysisResult, output_dir: str) -> str:
    """One line for the terminal: pooled and Vig correlations with BLOSUM62, output folder."""
    stats = result.summary["data"]["stats"]
    parts = ["[protperf analyze]", f"proteins={stats.get('analyzed', 0)}"]
    pooled = result.summary.get("similarity", {}).get("pooled")
    if pooled:
        parts.append(
            f"pooled pearson_offdiag={_fmt(pooled.get('pearson_offdiag'))} "
            f"(p={_fmt(pooled.get('pearson_offdiag_p'))})"
        )
        best = result.summary["similarity"]["best_heads"][0]
        parts.append(
            f"best head L{best['layer']}H{best['head']}={_fmt(best.get('pearson_offdiag'))}"
        )
    vig = result.summary.get("vig")
    if vig:
        parts.append(
            f"vig pearson_offdiag={_fmt(vig.get('pearson_offdiag'))} "
            f"(p={_fmt(vig.get('pearson_offdiag_p'))})"
        )
    embedding = result.summary.get("embedding")
    if embedding:
        parts.append(
            f"embedding pearson_offdiag={_fmt(embedding.get('pearson_offdiag'))} "
            f"(p={_fmt(embedding.get('pearson_offdiag_p'))})"
        )
    return " ".join(parts) + f" -> {output_dir}"

def _fmt(value: Any) -> str:
    return "nan" if value is None else f"{value:.3g}"


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
