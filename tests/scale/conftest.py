"""Helpers for the scale-out tests: tiny runs of the real entry point in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# A tiny architecture and run (same spirit as tests/model/conftest.py TINY).
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
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "~callbacks.progress_bar",
    "optim.warmup_steps=1",
]


def run_script(script: str, args: list[str], cwd: Path,
               env: dict[str, str | None] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``scripts/<script>`` from ``cwd`` with the repo on PYTHONPATH, one torch thread,
    wandb offline (unless ``env`` says otherwise; a value None removes the variable)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline",
                "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1", **(env or {})}
    full_env = {key: value for key, value in full_env.items() if value is not None}
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="session")
def local_sweep(tmp_path_factory) -> Path:
    """A 2-job sweep through hydra-submitit-launcher's local executor (hydra/launcher=local),
    logging to CSV, TensorBoard and wandb with WANDB_MODE unset (so offline by default)."""
    cwd = tmp_path_factory.mktemp("sweep")
    result = run_script("train.py", [
        "-m", "hydra/launcher=local", "model=transformer,performer_relu", "task=clm",
        "logger=many_loggers", *TINY, "hydra.sweep.dir=sweep",
    ], cwd=cwd, env={"WANDB_MODE": None})
    assert result.returncode == 0, result.stderr[-4000:]
    return cwd / "sweep"
