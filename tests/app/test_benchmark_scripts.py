"""The attention and data benchmark scripts on tiny inputs: where their rows go, not timings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from benchmark_log import PROVENANCE

REPO = Path(__file__).resolve().parents[2]


def run_script(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "scripts" / script), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # the whole attention benchmark at its smallest size
def test_attention_benchmark_appends_to_attention_csv(tmp_path):
    args = ["--lengths", "64", "--methods", "identity", "--skip-approx"]
    for _ in range(2):
        result = run_script("benchmark_attention.py", [*args, "--out-dir", str(tmp_path)],
                            tmp_path)
        assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "attention.csv"]
    table = pd.read_csv(tmp_path / "attention.csv")
    assert list(table.columns[-len(PROVENANCE):]) == list(PROVENANCE)
    assert len(table) == 2 and (table.status == "ok").all()  # one row per run
    assert (table.args == " ".join(args)).all()
    grid = [line for line in (tmp_path / "README.md").read_text().splitlines()
            if line.startswith("| identity | bidirectional | ")]
    assert len(grid) == 1 and grid[0].endswith(" GiB |")  # the latest run only, measured


def test_chunk_size_sweep_repeats_only_the_causal_performer():
    from benchmark_attention import series

    assert series("favor_relu", [16, 64]) == [(False, None), (True, 16), (True, 64)]
    assert series("exact", [16, 64]) == [(False, None), (True, None)]
    assert series("identity", [16, 64]) == [(False, None)]


@pytest.mark.slow  # two causal sizes of one Performer at the smallest length
def test_attention_benchmark_sweeps_the_causal_chunk_size(tmp_path):
    args = ["--lengths", "64", "--methods", "favor_relu", "--chunk-size", "16", "32",
            "--skip-approx", "--out-dir", str(tmp_path)]
    result = run_script("benchmark_attention.py", args, tmp_path)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "attention.csv", keep_default_na=False)
    assert table[["mode", "chunk_size"]].values.tolist() == [
        ["bidirectional", ""], ["causal", "16"], ["causal", "32"]]
    assert (table.status == "ok").all()
    readme = (tmp_path / "README.md").read_text()
    assert "| favor_relu | causal | 16 | new |" in readme


def test_data_benchmark_appends_to_data_csv(tmp_path):
    result = run_script("benchmark_data.py", [
        "--sizes-mb", "1", "--workers", "1", "--formats", "plain", "--out-dir", str(tmp_path),
        "--tmp-dir", str(tmp_path)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "data.csv"]
    table = pd.read_csv(tmp_path / "data.csv", keep_default_na=False)
    assert len(table) == 1 and table.format[0] == "plain" and table.processes[0] == 1
    assert table.args[0] == "--sizes-mb 1 --workers 1 --formats plain"
    assert table.threads[0] == ""  # torch threads do not apply to preparation
    assert "## FASTA preparation throughput" in (tmp_path / "README.md").read_text()
