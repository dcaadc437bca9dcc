"""scripts/gpu_session.sh runs end to end without a GPU: one results folder, every step."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_session_writes_every_result_into_one_folder(tmp_path):
    out = tmp_path / "results"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "INSTALL_FLA": "0",
           "BENCH_ARGS": "--device cpu --lengths 64 --steps 1 --num-layers 1"}
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_session.sh")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert {p.name for p in out.iterdir()} == {
        "environment.txt", "gpu_tests.log", "gpu_tests.xml", "benchmark_gpu.log", "gpu.csv",
        "README.md"}
    assert "fla gated (softmax) backward:" in (out / "environment.txt").read_text()
    assert "skipped" in (out / "gpu_tests.log").read_text()  # no CUDA here
    table = pd.read_csv(out / "gpu.csv")
    assert set(table.table) == {"attention", "training", "longest"}
    assert f"results in {out}/" in done.stdout
