"""Prepare a FASTA file (default: the bundled sample) into memory-mapped token shards.

    python scripts/prepare_data.py                                  # bundled sample -> cache
    python scripts/prepare_data.py uniref50.fasta.gz --out data/uniref50 --workers 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from protperf.data.cache import prepared_dir_for
from protperf.data.config import SAMPLE_FASTA, DataConfig, PrepareConfig, default_cache_dir
from protperf.data.fasta import FastaFormatError
from protperf.data.prepare import prepare
from protperf.data.shards import MANIFEST, read_manifest


def parse_args(argv=None) -> argparse.Namespace:
    defaults = PrepareConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
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
    p.add_argument("--force", action="store_true", help="prepare again even if done")
    return p.parse_args(argv)


def summary(manifest: dict, out: Path, seconds: float | None) -> str:
    m = manifest
    lines = [
        f"source      {m['source']['path']}",
        f"sha256      {m['source']['sha256']}",
        f"output      {out}",
        f"read        {m['sequences_read']:,} sequences",
        f"kept        {m['sequences_kept']:,} sequences, {m['residues']:,} residues",
        "skipped     " + ", ".join(f"{k}={v:,}" for k, v in m["skipped"].items()),
        f"truncated   {m['truncated']:,}",
    ]
    for split, s in m["splits"].items():
        lines.append(f"{split:<11} {s['sequences']:,} sequences, {s['residues']:,} residues, "
                     f"{len(s['shards'])} shard(s)")
    if seconds is not None:
        mb = m["source"]["bytes"] / 1e6
        lines.append(f"time        {seconds:.2f} s ({mb / max(seconds, 1e-9):.1f} MB/s of input)")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    config = DataConfig(
        path=args.fasta, cache_dir=args.cache_dir, prepare_workers=args.workers,
        prepare=PrepareConfig(
            valid_fraction=args.valid_fraction, test_fraction=args.test_fraction,
            min_residues=args.min_residues, max_residues=args.max_residues,
            long_policy=args.long_policy, on_invalid=args.on_invalid,
            chunk_bytes=int(args.chunk_mb * 2**20),
        ),
    )
    try:
        config.validate()
        cfg = config.prepare
        out = Path(args.out) if args.out else prepared_dir_for(
            args.fasta, cfg, config.resolved_cache_dir())
        if (out / MANIFEST).exists() and not args.force:
            print(f"already prepared (use --force to redo):\n"
                  f"{summary(read_manifest(out), out, None)}")
            return 0
        start = time.perf_counter()
        manifest = prepare(args.fasta, out, cfg, workers=args.workers, overwrite=args.force)
        print(f"prepared:\n{summary(manifest, out, time.perf_counter() - start)}")
    except (FileNotFoundError, FileExistsError, FastaFormatError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
