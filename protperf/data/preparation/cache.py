"""Where a FASTA file's prepared directory lives, keyed by its checksum and the settings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from protperf.checkpoint.atomic import write_text
from protperf.data.alphabet import ALPHABET_VERSION
from protperf.data.config import DataConfig, PrepareConfig
from protperf.data.fasta import check_exists
from protperf.data.preparation.pipeline import prepare
from protperf.data.preparation.validate import file_sha256, verify_prepared
from protperf.data.shards import FORMAT_VERSION, MANIFEST

_MEMO = "checksums.json"


def source_sha256(source: Path, cache_dir: Path) -> str:
    """sha256 of ``source``, memoized in ``cache_dir`` by (path, size, mtime) so that a
    multi-GB file is hashed once, not at every training start."""
    stat = source.stat()
    key = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    memo_path = cache_dir / _MEMO
    try:
        memo = json.loads(memo_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        memo = {}
    if key not in memo:
        memo[key] = file_sha256(source)
        write_text(memo_path, json.dumps(memo, indent=1, sort_keys=True))
    return memo[key]


def cache_key(sha256: str, cfg: PrepareConfig) -> str:
    blob = json.dumps(
        {"sha256": sha256, "settings": asdict(cfg), "format": FORMAT_VERSION,
         "alphabet": ALPHABET_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prepared_dir_for(source: str | Path, cfg: PrepareConfig, cache_dir: str | Path) -> Path:
    source = check_exists(source)
    cache_dir = Path(cache_dir)
    name = source.name.removesuffix(".gz")
    for suffix in (".fasta", ".fa", ".faa", ".fas"):
        name = name.removesuffix(suffix)
    return cache_dir / f"{name}-{cache_key(source_sha256(source, cache_dir), cfg)}"


def ensure_prepared(config: DataConfig, checksums: bool = False) -> tuple[Path, bool]:
    """The prepared directory for ``config.path``; prepares it if needed.

    Returns ``(directory, prepared_now)``.  A directory given as ``path`` is used as is.  An
    existing directory is checked with :func:`verify_prepared` (file sizes and counts; every
    file's CRC-32 with ``checksums``).  Several processes may call this at once for the same
    input: one prepares, the others wait for it and use its result.
    """
    config.validate()
    path = config.resolved_path()
    if path.is_dir():
        if not (path / MANIFEST).is_file():
            raise FileNotFoundError(
                f"data.path={path} is a directory without {MANIFEST}: not a prepared dataset"
            )
        verify_prepared(path, checksums)
        return path, False
    cfg = config.prepare
    cache_dir = config.resolved_cache_dir()
    out = prepared_dir_for(path, cfg, cache_dir)
    if (out / MANIFEST).is_file():
        verify_prepared(out, checksums)
        return out, False
    prepare(path, out, cfg, workers=config.prepare_workers,
            source_sha256=source_sha256(path, cache_dir))
    return out, True
