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
    assert series("projections", [16, 64]) == [(False, None)]


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


@pytest.mark.parametrize("causal, chunk", [(False, 0), (True, 64), (True, 32)])
def test_the_floor_counts_the_products_the_kernels_run(causal, chunk):
    """favor_gflop against torch's FLOP counter over the recomputing kernels' forward +
    backward; the kernels' extra column of ones adds 1/64."""
    import torch
    from benchmark_attention import DIM, FEATURES, HEADS, favor_gflop
    from benchmark_flops import matmul_gflop

    from protperf.attention.ops.favor_chunked import favor_chunked_attention
    from protperf.attention.ops.favor_linear import favor_linear_attention

    length = 512
    q, k, v = (torch.randn(1, HEADS, length, DIM // HEADS, requires_grad=True)
               for _ in range(3))
    projection = torch.randn(FEATURES, DIM // HEADS)

    def forward_backward():
        out = (favor_chunked_attention(q, k, v, projection, "softmax", chunk=chunk) if causal
               else favor_linear_attention(q, k, v, projection, "softmax"))
        out.backward(torch.ones_like(out))

    ratio = matmul_gflop(forward_backward) / favor_gflop(length, causal, chunk)
    assert 1.0 <= ratio < 1.02


def test_the_projections_floor_runs_the_q_and_k_projections_backward():
    import torch
    from benchmark_attention import build_layer

    x = torch.randn(1, 16, 512)
    trained = {}
    for method in ("identity", "projections"):
        layer = build_layer(method, causal=False)
        layer(x).sum().backward()
        inner = getattr(layer, "inner", layer)
        trained[method] = [p.grad is not None for p in (inner.q_proj.weight,
                                                        inner.k_proj.weight)]
    assert trained == {"identity": [False, False], "projections": [True, True]}
    assert build_layer("projections", causal=False)(x).shape == x.shape


def test_performer_rows_get_the_floor_from_the_projections_row():
    from benchmark_attention import favor_gflop, with_ratios

    def row(method, mode, cpu_s, **more):
        return {"method": method, "mode": mode, "length": 1024, "status": "ok",
                "implementation": "new", "cpu_s": cpu_s, "peak_mib": 10.0, "chunk_size": "",
                "gemm_gflops": 50.0, **more}

    rows = with_ratios([row("identity", "bidirectional", 1.0),
                        row("projections", "bidirectional", 1.5),
                        row("exact", "causal", 12.0, gemm_gflops=80.0),
                        row("favor_relu", "causal", 3.0, chunk_size=64)])
    floor = 1.5 + favor_gflop(1024, True, 64) / 80.0  # the best rate of the run
    performer = rows[-1]
    assert performer["floor_s"] == pytest.approx(floor)
    assert performer["floor_x_identity"] == pytest.approx(floor / 1.0)
    assert performer["floor_x_exact"] == pytest.approx(12.0 / floor)
    assert performer["x_projections"] == pytest.approx(2.0)
    assert "floor_s" not in rows[2]  # exact attention has no floor


def test_matmul_gflop_counts_products_and_the_in_place_batched_one():
    import torch
    from benchmark_flops import matmul_gflop

    a, b = torch.randn(4, 5), torch.randn(5, 6)
    out, x, y = torch.zeros(2, 3, 5), torch.randn(2, 3, 4), torch.randn(2, 4, 5)

    def products():
        torch.mm(a, b)  # 2 * 4 * 5 * 6 = 240
        out.baddbmm_(x, y)  # 2 * 2 * 3 * 4 * 5 = 240
        torch.add(a, 1.0)  # not a product

    assert matmul_gflop(products) == pytest.approx(480 / 1e9)
