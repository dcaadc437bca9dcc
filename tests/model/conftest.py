"""Helpers for the model tests: tiny Hydra configs composed from the real conf/ tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig

from protperf.cli.compose import compose_config
from protperf.cli.registry import register_schemas
from protperf.conf import CONF_DIR

register_schemas()  # the schemas conf/*.yaml name in their defaults
REPO = Path(__file__).resolve().parents[2]
CONF = CONF_DIR

# A tiny architecture and run: a few steps on the bundled sample in ~1-2 s.
TINY = [
    "model.dim=16",
    "model.num_heads=2",
    "model.num_layers=1",
    "model.ffn_dim=32",
    "model.max_position=64",
    "model.dropout=0.0",
    "model.attention.num_features=16",
    "data.max_length=32",
    "data.batch_size=4",
    "data.num_workers=0",
    "trainer.max_steps=3",
    "trainer.val_check_interval=3",
    "callbacks.last_checkpoint.every_n_train_steps=2",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "~callbacks.progress_bar",
    "optim.warmup_steps=1",
]


def compose_train(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """The training config as ``scripts/train.py`` would see it, plus ``overrides``."""
    extra = [f"output_dir={output_dir}"] if output_dir is not None else ["output_dir=unused"]
    return compose_config("train", [*TINY, *extra, *overrides])


def compose_evaluate(overrides: list[str], output_dir: Path) -> DictConfig:
    """The evaluation config as ``scripts/evaluate.py`` would see it."""
    return compose_config("evaluate", [f"output_dir={output_dir}", *overrides])


def run_script(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``scripts/<script>`` in a subprocess from ``cwd`` with the repo on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="session", autouse=True)
def _private_data_cache(tmp_path_factory):
    """Prepare the bundled sample once per session into a temporary cache (not ~/.cache);
    subprocesses inherit it through the environment."""
    previous = os.environ.get("PROTPERF_CACHE")
    os.environ["PROTPERF_CACHE"] = str(tmp_path_factory.mktemp("prepared"))
    yield
    if previous is None:
        os.environ.pop("PROTPERF_CACHE", None)
    else:
        os.environ["PROTPERF_CACHE"] = previous
