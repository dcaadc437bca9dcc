"""Helpers for the inference tests: tiny random models, and freshly trained tiny checkpoints
(one MLM, one CLM) made once per session from the packaged configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from protperf.attention import AttentionConfig
from protperf.model.config import ModelConfig
from protperf.model.transformer import ProteinLanguageModel

REPO = Path(__file__).resolve().parents[2]
TRAIN_TINY = [
    "model.dim=16", "model.num_heads=2", "model.num_layers=1", "model.ffn_dim=32",
    "model.max_position=64", "model.dropout=0.0", "model.attention.num_features=16",
    "data.max_length=32", "data.batch_size=4", "data.num_workers=0", "trainer.max_steps=2",
    "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false", "~callbacks.progress_bar", "optim.warmup_steps=1",
    "logger=csv",
]


def tiny_model(
    kind: str = "favor_softmax",
    causal: bool = True,
    position: str = "rotary",
    dtype: torch.dtype = torch.float64,
    weight_scale: float = 5.0,
    max_position: int = 128,
    seed: int = 0,
) -> ProteinLanguageModel:
    """A random 2-layer model in eval mode; weights scaled up so that attention is far from
    uniform and the Performer key stabilizer is exercised (feature exponents of ~10-50)."""
    torch.manual_seed(seed)
    config = ModelConfig(
        dim=32, num_heads=2, num_layers=2, ffn_dim=64, dropout=0.0, position=position,
        max_position=max_position, attention=AttentionConfig(kind=kind, num_features=16))
    model = ProteinLanguageModel(config, causal=causal)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(weight_scale)
    return model.to(dtype).eval()


def run_script(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``scripts/<script>`` in a subprocess from ``cwd`` with the repo on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "scripts" / script), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def _train(objective: str, directory: Path) -> Path:
    from protperf.cli.compose import compose_config
    from protperf.training import train

    cfg = compose_config("train", [
        *TRAIN_TINY, "model=performer_softmax", f"task={objective}",
        f"output_dir={directory}", f"data.cache_dir={directory / 'prepared'}",
    ])
    return Path(train(cfg)["checkpoint"])


@pytest.fixture(scope="session")
def trained_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """{'mlm': path, 'clm': path}: tiny Performers trained 2 steps on the bundled sample."""
    root = tmp_path_factory.mktemp("checkpoints")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {objective: _train(objective, root / objective) for objective in ("mlm", "clm")}
    finally:
        torch.set_num_threads(previous)
