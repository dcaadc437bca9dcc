"""Benchmark the cost of checkpoint integrity: writing and loading a model of about SIZE MB with
and without the per-tensor sha256 and the finite-weights check.

    python scripts/benchmark_checkpoint_io.py                   # 100 MB, rows to benchmarks/
    python scripts/benchmark_checkpoint_io.py --sizes-mb 10 --smoke

Each row: one model size, the median over ``--repeats`` of ``torch.load`` alone
(``load_s``), the hash check (``hash_s``), the finite check (``finite_s``), the whole
protperf load of the checkpoint (:func:`protperf.checkpoint.load.read_saved_model`,
``protperf_load_s``) and the whole atomic write with hash (``write_s``). The file is written
to ``--tmp-dir`` (page cache warm: the second and later loads read from memory).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from benchmark_log import add_output_options, log_run, provenance

from protperf.checkpoint.integrity import first_nonfinite, integrity_record, verify_integrity
from protperf.checkpoint.load import read_checkpoint, read_saved_model
from protperf.checkpoint.writer import write_checkpoint
from protperf.model.config import ModelConfig
from protperf.model.transformer import ProteinLanguageModel
from protperf.reporting.tables import markdown_table


def model_of_size(megabytes: int) -> ProteinLanguageModel:
    """A float32 exact-attention model of about ``megabytes`` MB (width 512, rotary, layers
    added)."""
    dim, per_layer = 512, 12 * 512 * 512 * 4  # q/k/v/out + a 4x MLP, float32 bytes
    layers = max(1, round(megabytes * 1e6 / per_layer))
    torch.manual_seed(0)
    config = ModelConfig(dim=dim, num_heads=8, num_layers=layers, ffn_dim=4 * dim, dropout=0.0,
                         position="rotary")
    return ProteinLanguageModel(config, causal=False)


def median_time(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(megabytes: int, repeats: int, directory: Path) -> dict[str, object]:
    load_before = os.getloadavg()[0]
    network = model_of_size(megabytes)
    path = directory / f"model-{megabytes}.ckpt"
    write_s = median_time(lambda: write_checkpoint(network, network.config, path), repeats)
    size = path.stat().st_size
    load_s = median_time(lambda: torch.load(path, map_location="cpu", weights_only=True),
                         repeats)
    checkpoint = read_checkpoint(path)
    state = checkpoint["state_dict"]
    hash_s = median_time(lambda: verify_integrity(state, checkpoint["protperf_integrity"],
                                                  str(path)), repeats)
    finite_s = median_time(lambda: first_nonfinite(state), repeats)
    protperf_load_s = median_time(lambda: read_saved_model(path), repeats)
    record_s = median_time(lambda: integrity_record(state), repeats)
    path.unlink()
    return {"file_mb": round(size / 1e6, 1), "tensors": len(state),
            "write_s": round(write_s, 3), "load_s": round(load_s, 3),
            "hash_s": round(hash_s, 3), "hash_write_s": round(record_s, 3),
            "finite_s": round(finite_s, 4), "protperf_load_s": round(protperf_load_s, 3),
            "hash_mb_per_s": round(size / 1e6 / hash_s), "repeats": repeats,
            "load_before": round(load_before, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    add_output_options(parser, "checkpoint_io.csv")
    parser.add_argument("--tmp-dir", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
        for megabytes in args.sizes_mb:
            rows.append(measure(megabytes, args.repeats, Path(tmp)))
            print(rows[-1], flush=True)
    run = provenance(sys.argv[1:] if argv is None else argv, threads=args.threads)
    table = pd.DataFrame(rows)
    csv_path, report = log_run("checkpoint_io", table, run, Path(args.out_dir))
    print(markdown_table(table), f"appended to {csv_path}; wrote {report}", sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
