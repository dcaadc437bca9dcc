"""`python scripts/analyze.py` on a checkpoint trained for a few steps (Hydra, subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from protperf.cli.registry import register_schemas
from protperf.conf import CONF_DIR
from protperf.training import train

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "model=performer_softmax", "task=clm", "model.dim=16", "model.num_heads=2",
    "model.num_layers=2", "model.ffn_dim=32", "model.max_position=64",
    "model.attention.num_features=16", "data.max_length=32", "data.batch_size=4",
    "data.num_workers=0", "trainer.max_steps=2", "trainer.val_check_interval=2",
    "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false", "~callbacks.progress_bar", "optim.warmup_steps=1",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train")
    register_schemas()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("train", overrides=[*TINY, f"output_dir={out}",
                                          f"data.cache_dir={out / 'prepared'}"])
    return Path(train(cfg)["checkpoint"])


def run_analyze(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "scripts" / "analyze.py"), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_analyze_script_writes_figures_csv_and_json(checkpoint, tmp_path):
    result = run_analyze([f"checkpoint={checkpoint}", "data.max_sequences=6",
                          "data.max_length=48", "permutations=20", "grid_max_length=10",
                          "hydra.run.dir=run"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[protperf analyze] proteins=6 pooled pearson_offdiag=" in result.stdout
    assert ", random-init floor " in result.stdout  # null_models=3 by default
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"] == {"layers": 2, "heads": 2, "causal": True,
                                "attention": ["favor_softmax"]}
    assert summary["data"]["stats"]["analyzed"] == 6
    assert summary["config"]["checkpoint"] == str(checkpoint)
    table = pd.read_csv(run / "head_correlations.csv")
    assert (table["kind"] == "head").sum() == 4
    for stem in ("similarity_pooled", "vig_similarity", "attention_grid"):
        assert (run / "figures" / f"{stem}.svg").is_file()
    assert "100%" in result.stderr  # the tqdm progress bar over sequences


def test_analyze_script_errors_name_the_key(tmp_path):
    bad = run_analyze(["checkpoint=missing.ckpt", "normalization=bits"], tmp_path)
    assert bad.returncode != 0
    assert "normalization='bits' is not one of log_odds, marginal_log_odds, uniform" in bad.stderr


def test_analyze_script_on_a_planted_checkpoint(tmp_path):
    from protperf.analysis.controls import PlantedConfig, save_planted_checkpoint

    checkpoint = save_planted_checkpoint(PlantedConfig(beta=0.3), tmp_path / "planted.ckpt")
    result = run_analyze([f"checkpoint={checkpoint}", "methods=[similarity,embedding]",
                          "data.max_sequences=8", "data.max_length=256", "permutations=200",
                          "figures=false", "hydra.run.dir=run"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["similarity"]["pooled"]["pearson_offdiag"] >= 0.9
    assert summary["embedding"]["pearson_offdiag"] == pytest.approx(1.0, abs=1e-6)
    assert "embedding pearson_offdiag=1 (p=0.00498, random-init floor " in result.stdout
    embedding = pd.read_csv(tmp_path / "run" / "embedding_similarity.csv", index_col=0)
    assert embedding.shape == (20, 20)
    assert not (tmp_path / "run" / "figures").exists()
