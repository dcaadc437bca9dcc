"""scripts/benchmark_inference.py on tiny lengths: the rows it writes, not timings (speeds
are only checked to be positive)."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from tests.inference.conftest import REPO, run_script


def load_benchmark_module():
    spec = importlib.util.spec_from_file_location(
        "benchmark_inference", REPO / "scripts" / "benchmark_inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ListQueue(list):
    put = list.append


def test_measurements_in_process():
    benchmark = load_benchmark_module()
    rows = ListQueue()
    for kind in ("performer_softmax", "transformer"):
        benchmark.measure_generation(kind, 20, 16, "cpu", 1, rows)
        benchmark.measure_embedding(kind, 50, 16, "cpu", 1, rows)
    assert [(r["task"], r["model"], r["length"]) for r in rows] == [
        ("generate", "performer_softmax", 20), ("embed", "performer_softmax", 50),
        ("generate", "transformer", 20), ("embed", "transformer", 50)]
    assert all(r["per_s"] > 0 and r["per_cpu_s"] > 0 for r in rows)
    # state sizes: Performer 2 layers x 4 heads x m=16 x (32+1) floats; KV cache 2 x 20 x 128
    assert rows[0]["state_mib"] * 2**20 == 2 * 4 * 16 * 33 * 4
    assert rows[2]["state_mib"] * 2**20 == 2 * 2 * 20 * 128 * 4


@pytest.mark.slow  # four fresh processes
def test_script_appends_rows_with_provenance(tmp_path):
    output = tmp_path / "inference.csv"
    args = ["--gen-lengths", "8", "--embed-lengths", "16", "--models", "performer_relu",
            "--num-features", "8", "--out-dir", str(tmp_path)]
    for _ in range(2):
        result = run_script("benchmark_inference.py", args, tmp_path)
        assert result.returncode == 0, result.stderr
    table = pd.read_csv(output)
    assert len(table) == 4 and (table.status == "ok").all()
    assert table.task.tolist() == ["generate", "embed"] * 2
    for column in ("commit", "date", "machine", "torch", "threads", "arch", "args"):
        assert table[column].notna().all()
    assert table.arch[0] == "D=128 H=4 layers=2 ff=512 m=8 rotary"
