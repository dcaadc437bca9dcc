"""``protperf-prepare`` / ``scripts/prepare_data.py``: FASTA -> memory-mapped token shards.

    protperf-prepare                                               # bundled sample -> cache
    protperf-prepare uniref50.fasta.gz --out data/uniref50 --workers 2

The output is written under a temporary name beside --out and renamed when complete; a folder
that is not a prepared directory is never replaced.  Errors are one line (--debug: traceback).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from protperf.data.config import SAMPLE_FASTA, DataConfig, PrepareConfig, default_cache_dir
from protperf.data.preparation.cache import prepared_dir_for, source_sha256
from protperf.data.preparation.pipeline import SKIP_REASONS, prepare
from protperf.data.preparation.target import is_prepared
from protperf.data.preparation.validate import verify_prepared
from protperf.data.shards import SPLITS

INTERRUPTED = "interrupted: nothing was left half-written"


def parse_args(argv=None) -> argparse.Namespace:
    defaults = PrepareConfig()
    p = argparse.ArgumentParser(prog="protperf-prepare", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("fasta", nargs="?", default=str(SAMPLE_FASTA),
                   help="FASTA file, plain or .gz (default: the bundled sample)")
    p.add_argument("--out", help="output directory (default: the cache directory the data "
                   "module uses, keyed by the file's checksum and the settings)")
    p.add_argument("--cache-dir", default=None, help=f"default: {default_cache_dir()}")
    p.add_argument("--workers", type=int, default=DataConfig().prepare_workers)
    p.add_argument("--valid-fraction", type=float, default=defaults.valid_fraction)
    p.add_argument("--test-fraction", type=float, default=defaults.test_fraction)
    p.add_argument("--min-residues", type=int, default=defaults.min_residues)
    p.add_argument("--max-residues", type=int, default=defaults.max_residues)
    p.add_argument("--long-policy", choices=("skip", "truncate"), default=defaults.long_policy)
    p.add_argument("--on-invalid", choices=("error", "skip"), default=defaults.on_invalid)
    p.add_argument("--chunk-mb", type=float, default=defaults.chunk_bytes / 2**20)
    p.add_argument("--allow-nucleotide", action="store_true",
                   help="prepare input whose records are mostly A/C/G/T/U/N (refused otherwise)")
    p.add_argument("--duplicate-ids", choices=("keep", "drop"),
                   default=PrepareConfig.duplicate_ids,
                   help="records whose id was kept before: keep (counted) or drop (counted)")
    p.add_argument("--force", action="store_true",
                   help="prepare again even if done (replaces only a prepared directory)")
    p.add_argument("--verify-checksums", action="store_true",
                   help="when already prepared, also check every file's CRC-32")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p.parse_args(argv)


def summary(manifest: dict, out: Path, seconds: float | None) -> str:
    m = manifest
    lines = [
        f"source      {m['source']['path']}",
        f"sha256      {m['source']['sha256']}",
        f"output      {out}",
        f"read        {m['sequences_read']:,} sequences",
        f"kept        {m['sequences_kept']:,} sequences, {m['residues']:,} residues",
        "skipped     " + ", ".join(f"{k}={m['skipped'][k]:,}" for k in SKIP_REASONS),
        f"truncated   {m['truncated']:,}",
        f"duplicates  {m['duplicate_ids']:,} ids seen before"
        + (" (dropped)" if m["settings"]["duplicate_ids"] == "drop" else " (kept)"),
        f"nucleotide  {m['nucleotide_like']:,} kept records look like nucleotides",
    ]
    for split in SPLITS:
        s = m["splits"][split]
        lines.append(f"{split:<11} {s['sequences']:,} sequences, {s['residues']:,} residues, "
                     f"{len(s['shards'])} shard(s)")
    if seconds is not None:
        mb = m["source"]["bytes"] / 1e6
        lines.append(f"time        {seconds:.2f} s ({mb / max(seconds, 1e-9):.1f} MB/s of input)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    config = DataConfig(
        path=args.fasta, cache_dir=args.cache_dir, prepare_workers=args.workers,
        prepare=PrepareConfig(
            valid_fraction=args.valid_fraction, test_fraction=args.test_fraction,
            min_residues=args.min_residues, max_residues=args.max_residues,
            long_policy=args.long_policy, on_invalid=args.on_invalid,
            chunk_bytes=int(args.chunk_mb * 2**20), allow_nucleotide=args.allow_nucleotide,
            duplicate_ids=args.duplicate_ids,
        ),
    )
    config.validate()
    cfg = config.prepare
    sha256 = None
    if args.out:
        out = Path(args.out)
    else:
        out = prepared_dir_for(args.fasta, cfg, config.resolved_cache_dir())
        sha256 = source_sha256(Path(args.fasta), config.resolved_cache_dir())
    done = is_prepared(out) and not args.force
    start = time.perf_counter()
    manifest = prepare(args.fasta, out, cfg, workers=args.workers, overwrite=args.force,
                       source_sha256=sha256)  # returns an existing one of the same input
    if done:
        if args.verify_checksums:
            verify_prepared(out, checksums=True)
        print(f"already prepared (use --force to redo):\n{summary(manifest, out, None)}")
    else:
        print(f"prepared:\n{summary(manifest, out, time.perf_counter() - start)}")
