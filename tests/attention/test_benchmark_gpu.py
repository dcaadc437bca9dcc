"""scripts/benchmark_gpu.py runs on CPU and writes its tables (timings only checked > 0)."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark_gpu.py"


def load_script():
    spec = importlib.util.spec_from_file_location("benchmark_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_benchmark(args):
    return load_script().main(args)


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


def test_benchmark_gpu_records_any_failing_cell_and_carries_on(tmp_path, monkeypatch):
    """A Triton-style assertion in one attention method and a value error in one model's
    training step are recorded as those cells' status; every other cell still runs."""
    module = load_script()
    methods = module.attention_methods

    def broken_kernel(q, k, v, w):
        raise AssertionError("Triton: block size must be a power of 2")

    def with_broken_kernel(device):
        return {**methods(device), "broken_kernel": broken_kernel}

    training_cell = module.training_cell

    def training_with_a_bad_model(model_name, *args):
        if model_name == "identity":
            raise ValueError("bad value\nsecond line")
        return training_cell(model_name, *args)

    monkeypatch.setattr(module, "attention_methods", with_broken_kernel)
    monkeypatch.setattr(module, "training_cell", training_with_a_bad_model)
    csv = module.main(["--device", "cpu", "--lengths", "64", "128", "--steps", "1",
                       "--num-layers", "1", "--out-dir", str(tmp_path)])
    table = pd.read_csv(csv)
    broken = table[table.method == "broken_kernel"]
    assert list(broken.length) == [64, 128]  # tried at every length, not stopped
    assert (broken.status == "failed: AssertionError: Triton: block size must be a power "
                              "of 2").all()
    others = table[(table.table == "attention") & (table.method != "broken_kernel")]
    assert len(others) == 8 and (others.status == "ok").all()
    training = table[table.table == "training"]
    assert (training[training.method == "identity"].status
            == "failed: ValueError: bad value").all()
    assert (training[training.method != "identity"].status == "ok").all()
    longest = table[table.table == "longest"].set_index("method")
    assert longest.status["identity"] == "stopped: L = 64: failed: ValueError: bad value"
    assert longest.length["exact"] == 128


def test_failure_summary_names_the_error_type():
    summary = load_script().failure_summary
    assert summary(AssertionError()) == "AssertionError"
    assert summary(RuntimeError("\n  out of resource: shared memory\nmore")) == (
        "RuntimeError: out of resource: shared memory")
    assert len(summary(ValueError("x" * 500))) == 160
