"""Benchmark FASTA preparation: throughput (MB/s of FASTA, sequences/s) and peak memory.

Generates FASTA inputs of the requested sizes in a temporary directory (residues drawn with the
bundled sample's amino-acid frequencies, lengths resampled from its length distribution,
60-residue lines, UniRef-style headers) and, for ``--formats gz``, a gzipped copy of each
(level 6, as ``gzip`` does by default), then prepares each with 1 and 2 processes in a child
process, sampling the resident memory of the child and its workers (psutil) every 20 ms.
MB are MB of FASTA text (decompressed) in every row, so plain and gz rows compare directly.
Rows are appended, with provenance, to benchmarks/data.csv and benchmarks/README.md is
regenerated.

    python scripts/benchmark_data.py                                             # 100 MB, 1 GB
    python scripts/benchmark_data.py --sizes-mb 20 --workers 1 --out-dir /tmp/b  # quick look
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from benchmark_log import BENCHMARK_DIR, log_run, provenance

from protperf.data.fasta import read_fasta
from protperf.reporting.tables import markdown_table
from protperf.resources import SAMPLE_FASTA

ROOT = Path(__file__).resolve().parents[1]


def generate_fasta(path: Path, size_bytes: int, seed: int = 0) -> int:
    """Write about ``size_bytes`` of FASTA; returns the number of sequences."""
    lengths, letters = [], []
    for _, residues in read_fasta(SAMPLE_FASTA):
        residues = residues.rstrip("*")
        lengths.append(len(residues))
        letters.append(residues)
    counts = np.bincount(np.frombuffer("".join(letters).encode(), dtype=np.uint8), minlength=256)
    alphabet = np.flatnonzero(counts).astype(np.uint8)
    probs = counts[alphabet] / counts[alphabet].sum()
    rng = np.random.default_rng(seed)
    written, n = 0, 0
    with open(path, "wb") as out:
        while written < size_bytes:
            batch = rng.choice(lengths, size=2000)
            stream = alphabet[rng.choice(len(alphabet), size=int(batch.sum()), p=probs)].tobytes()
            parts, pos = [], 0
            for length in batch.tolist():
                seq = stream[pos : pos + length]
                pos += length
                lines = b"\n".join(seq[i : i + 60] for i in range(0, length, 60))
                parts.append(b">UniRef50_BENCH%09d Generated protein n=1 Tax=None\n%s\n"
                             % (n, lines))
                n += 1
            block = b"".join(parts)
            out.write(block)
            written += len(block)
    return n


_CHILD = """
import sys, time
from protperf.data.config import PrepareConfig
from protperf.data.preparation.pipeline import prepare
t = time.perf_counter()
m = prepare(sys.argv[1], sys.argv[2], PrepareConfig(), workers=int(sys.argv[3]), overwrite=True)
print(time.perf_counter() - t, m["sequences_read"])
"""


def run_prepare(fasta: Path, out: Path, workers: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(fasta), str(out), str(workers)],
                            stdout=subprocess.PIPE, env=env, text=True, cwd=ROOT)
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = parent.memory_info().rss + sum(
                c.memory_info().rss for c in parent.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    stdout, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"prepare failed for {fasta} with {workers} workers")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child and its pool workers
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    seconds, sequences = stdout.split()
    return {"seconds": float(seconds), "sequences": int(sequences), "peak_rss_mb": peak / 2**20,
            "cpu_seconds": cpu, "load_before": load_before}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out-dir", default=str(BENCHMARK_DIR),
                   help="where data.csv and the README are (default: benchmarks/)")
    p.add_argument("--formats", nargs="+", choices=["plain", "gz"], default=["plain", "gz"],
                   help="input formats to prepare (gz: a gzipped copy of each generated file)")
    p.add_argument("--tmp-dir", default=None)
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
        for size_mb in args.sizes_mb:
            fasta = Path(tmp) / f"bench_{size_mb}mb.fasta"
            generate_fasta(fasta, size_mb * 10**6)
            size = fasta.stat().st_size
            inputs = []
            if "plain" in args.formats:
                inputs.append(("plain", fasta))
            if "gz" in args.formats:
                packed = fasta.with_name(fasta.name + ".gz")
                with open(fasta, "rb") as src, gzip.open(packed, "wb", compresslevel=6) as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
                inputs.append(("gz", packed))
            for fmt, path in inputs:
                for workers in args.workers:
                    out = Path(tmp) / f"out_{size_mb}_{fmt}_{workers}"
                    result = run_prepare(path, out, workers)
                    shutil.rmtree(out)
                    row = {
                        "input_mb": round(size / 1e6, 1),
                        "format": fmt,
                        "file_mb": round(path.stat().st_size / 1e6, 1),
                        "processes": workers,
                        "seconds": round(result["seconds"], 2),
                        "mb_per_s": round(size / 1e6 / result["seconds"], 1),
                        "seqs_per_s": round(result["sequences"] / result["seconds"]),
                        "cpu_s": round(result["cpu_seconds"], 2),
                        "mb_per_cpu_s": round(size / 1e6 / result["cpu_seconds"], 1),
                        "peak_rss_mb": round(result["peak_rss_mb"]),
                        "load_before": round(result["load_before"], 1),
                    }
                    rows.append(row)
                    print(row, flush=True)
            for _, path in inputs:
                path.unlink()
    # threads: torch's do not apply (preparation is numpy and processes)
    run = provenance(sys.argv[1:] if argv is None else argv, threads="")
    table = pd.DataFrame(rows)
    csv_path, report = log_run("data", table, run, Path(args.out_dir))
    print(markdown_table(table), f"appended to {csv_path}; wrote {report}", sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
