"""scripts/benchmark_training.py on a tiny window: the tables it builds, not timings (speeds
are only checked to be positive)."""

import importlib.util
import math

import pandas as pd
import pytest

from tests.model.conftest import REPO, run_script


def load_benchmark_module():
    spec = importlib.util.spec_from_file_location(
        "benchmark_training", REPO / "scripts" / "benchmark_training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # repeated benchmark runs; the row format is tested by the other tests
def test_repeats_give_one_median_row_per_cell(tmp_path):
    result = run_script("benchmark_training.py", [
        "--skip", "quality", "--windows", "32", "--steps", "2", "--warmup", "0",
        "--threads", "1", "--models", "identity", "--objectives", "clm", "--repeats", "2",
        "--dim", "32", "--num-heads", "2", "--num-layers", "1", "--ffn-dim", "64",
        "--num-features", "8", "--out-dir", str(tmp_path)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[1/2] identity" in result.stdout and "[2/2] identity" in result.stdout
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["training_throughput.csv"]
    table = pd.read_csv(tmp_path / "training_throughput.csv")
    assert len(table) == 1 and table.repeats[0] == 2
    assert table.threads[0] == 1 and "--repeats 2" in table.args[0]
    assert str(tmp_path) not in table.args[0]  # where results go is not what was measured
    assert "## Training throughput and memory" in (tmp_path / "README.md").read_text()
    assert table.arch[0] == "D=32 H=2 layers=1 ff=64 m=8"
    assert table.tokens_per_cpu_s[0] > 0 and table.step_mem_mib.notna().all()
    assert table.x_identity[0] == 1.0


def test_interleaved_worker_times_every_model_in_one_process():
    benchmark = load_benchmark_module()
    rows = benchmark.interleaved_worker(
        ["identity", "performer_relu"], "clm", window=32, warmup=0, steps=3, device="cpu",
        num_features=16, threads=1)
    assert [row["model"] for row in rows] == ["identity", "performer_relu"]
    for row in rows:
        assert row["tokens_per_s"] > 0 and row["tokens_per_cpu_s"] > 0
        assert math.isclose(row["step_s"], 32 / row["tokens_per_s"])
        assert math.isnan(row["step_mem_mib"])  # one process: no per-model memory


def test_architecture_options_build_that_model():
    benchmark = load_benchmark_module()
    arch = {"dim": 32, "num_heads": 2, "num_layers": 1, "ffn_dim": 64}
    module = benchmark.build_module("performer_relu", "clm", window=16, num_features=8,
                                    arch=arch)
    blocks = module.model.blocks
    assert len(blocks) == 1
    assert (blocks[0].attn.num_heads, blocks[0].attn.dim) == (2, 32)
    assert blocks[0].ffn.fc_in.out_features == 64
    assert blocks[0].attn.feature_projection.shape == (8, 16)  # m x head dim
    default = benchmark.build_module("identity", "mlm", window=16, num_features=8)
    assert len(default.model.blocks) == benchmark.ARCH["num_layers"]
    assert default.model.blocks[0].attn.dim == benchmark.ARCH["dim"]
    # windows beyond the default positional table get a table that covers them
    assert benchmark.architecture(None, 16384)["max_position"] == 16384
    assert benchmark.architecture(None, 1024)["max_position"] == benchmark.ARCH["max_position"]


def test_the_ceiling_counts_only_the_models_extra_products_at_the_best_rate():
    benchmark = load_benchmark_module()
    table = pd.DataFrame({
        "model": ["identity", "performer_relu", "identity"],
        "implementation": ["new"] * 3, "objective": ["clm", "clm", "mlm"],
        "window": [1000, 1000, 1000], "tokens_per_cpu_s": [1000.0, 600.0, 800.0],
        "gflop_per_step": [10.0, 19.0, 10.0], "gemm_gflops": [80.0, 90.0, 70.0]})
    result = benchmark.with_ceiling(table)
    # identity's step is 1 s; the Performer's 9 extra GFLOP at the cell's best 90 GFLOP/s
    assert result.max_x_identity.tolist()[:2] == pytest.approx([1.0, 1.0 / (1.0 + 9 / 90)])
    assert result.max_x_identity[2] == pytest.approx(1.0)  # its own cell (mlm)
    interleaved = table.drop(columns=["gflop_per_step", "gemm_gflops"])
    assert benchmark.with_ceiling(interleaved).max_x_identity.isna().all()


def test_a_performer_step_counts_more_products_than_the_no_attention_step():
    benchmark = load_benchmark_module()
    arch = {"dim": 32, "num_heads": 2, "num_layers": 1, "ffn_dim": 64}
    figures = {model: benchmark.product_figures(
        benchmark.training_step(model, "clm", 32, "cpu", 8, arch=arch), 32, 8, arch)
        for model in ("identity", "performer_relu")}
    assert 0 < figures["identity"]["gflop_per_step"] < figures["performer_relu"]["gflop_per_step"]
    assert all(f["gemm_gflops"] > 0 for f in figures.values())
