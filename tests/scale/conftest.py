"""Helpers for the scale-out tests: tiny runs of the real entry point in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The tiny architecture and run of the model tests (a few steps on the bundled sample).
from tests.model.conftest import TINY  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


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
