"""scripts/benchmark_gpu.py runs on CPU and writes its tables (timings only checked > 0)."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark_gpu.py"


def run_benchmark(args):
    spec = importlib.util.spec_from_file_location("benchmark_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(args)


def check_tables(csv: Path, length: int):
    table = pd.read_csv(csv)
    assert csv.name == "gpu.csv" and (csv.parent / "README.md").exists()
    assert set(table.table) == {"attention", "training", "longest"}
    attention = table[table.table == "attention"]
    assert set(attention.method) == {"sdpa_causal", "sdpa_bidirectional",
                                     "protperf_torch_causal", "protperf_torch_bidirectional"}
    assert (attention.status == "ok").all() and (attention.ms > 0).all()
    training = table[table.table == "training"]
    assert set(training.method) == {"exact", "performer_softmax", "performer_relu", "identity"}
    assert (training.tokens_per_s > 0).all() and (training.length == length).all()
    longest = table[table.table == "longest"]
    assert (longest.length == length).all()
    for column in ("device", "torch", "fla", "commit", "date", "machine", "args"):
        assert table[column].notna().all()
    assert (table.device == "cpu").all()
    assert "GPU: attention, training throughput" in (csv.parent / "README.md").read_text()


def test_benchmark_gpu_runs_on_cpu_at_a_short_length(tmp_path):
    csv = run_benchmark(["--device", "cpu", "--lengths", "128", "--steps", "1",
                         "--num-layers", "1", "--out-dir", str(tmp_path)])
    check_tables(csv, 128)


@pytest.mark.slow
def test_benchmark_gpu_cpu_command_of_the_issue(tmp_path):
    csv = run_benchmark(["--device", "cpu", "--lengths", "1024", "--steps", "1",
                         "--out-dir", str(tmp_path)])
    check_tables(csv, 1024)
