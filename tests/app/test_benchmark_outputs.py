"""Where benchmark rows go is explicit: ``--help`` names the default folder, and ``--smoke``
writes to a new temporary folder, never to the tracked ``benchmarks/``."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_log import BENCHMARK_DIR, add_output_options

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = ["benchmark_attention.py", "benchmark_controls.py", "benchmark_data.py",
           "benchmark_gpu.py", "benchmark_inference.py", "benchmark_training.py"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_output_options(parser, "x.csv")
    return parser


def test_smoke_writes_to_a_new_temporary_folder(capsys):
    args = _parser().parse_args(["--smoke"])
    assert args.smoke and args.out_dir != BENCHMARK_DIR and args.out_dir.is_dir()
    assert not any(args.out_dir.iterdir())
    assert f"smoke run: rows go to {args.out_dir}" in capsys.readouterr().err


def test_out_dir_wins_over_smoke(tmp_path):
    assert _parser().parse_args(["--smoke", "--out-dir", str(tmp_path)]).out_dir == tmp_path
    assert _parser().parse_args(["--out-dir", str(tmp_path), "--smoke"]).out_dir == tmp_path
    assert _parser().parse_args([]).out_dir == BENCHMARK_DIR


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_says_where_rows_go(script):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / script), "--help"],
                            capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                                 "COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    assert str(BENCHMARK_DIR) in result.stdout and "--smoke" in result.stdout
