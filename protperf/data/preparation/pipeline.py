"""FASTA -> a prepared directory of memory-mapped token shards and a JSON manifest.

The input is cut into chunks of ``chunk_bytes`` at record boundaries (:mod:`.sources`: a plain
file by byte ranges, a gzipped one as it is decompressed); each chunk becomes one shard per
split (``NNNNN`` = chunk number, :class:`~.chunk.ChunkJob`).  Chunks run either in this process
(a thread reads or decompresses chunk k + 1 and another writes chunk k - 1's shards while chunk
k is parsed) or in a pool of processes (the parent hands out plain byte ranges, which the
workers read, or decompressed text).  Chunks do not depend on the number of processes, so the
output is byte-identical for any ``workers``; memory is bounded by a few chunks per process,
whatever the input size.  The split rule is in :mod:`.splits`.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

from protperf.checkpoint.atomic import signals_raise
from protperf.data.alphabet import ALPHABET, ALPHABET_VERSION
from protperf.data.config import PrepareConfig
from protperf.data.fasta import check_exists, is_gzip
from protperf.data.preparation.chunk import ChunkJob
from protperf.data.preparation.duplicates import SeenDigests, drop_records, duplicate_mask
from protperf.data.preparation.sources import (
    FileRange,
    chunk_text,
    gzip_chunks,
    plain_chunks,
    read_ahead,
)
from protperf.data.preparation.target import (
    check_source_outside,
    check_target,
    clean_leftovers,
    is_prepared,
    locked,
    publish,
    temporary_name,
)
from protperf.data.preparation.validate import file_sha256, load_manifest, verify_prepared
from protperf.data.preparation.writer import ShardWriter, write_file
from protperf.data.shards import FORMAT_VERSION, MANIFEST, SPLITS
from protperf.errors import DataError

SKIP_REASONS: tuple[str, ...] = (
    "empty", "invalid_characters", "too_short", "too_long", "duplicate_id")
Chunks = Iterable[tuple[int, bytearray | FileRange]]


def _in_process(job: ChunkJob, chunks: Chunks) -> tuple[Counter, dict, list]:
    """All chunks in this process: a thread reads (or decompresses) chunk k + 1 and another
    writes chunk k - 1's shards while chunk k is parsed; returns :func:`_merge`'s result."""
    texts = ((start, chunk_text(chunk)) for start, chunk in chunks)  # run by the reader
    with ShardWriter(background=True) as writer:
        return _merge((job.run(i, start, text, writer)
                       for i, (start, text) in enumerate(read_ahead(texts))), job.cfg)


def _in_pool(pool, job: ChunkJob, chunks: Chunks, workers: int) -> tuple[Counter, dict, list]:
    """All chunks in a pool of ``workers`` processes, at most ``workers`` ahead of the results
    (``pool.imap`` would read a gzip stream's whole text into memory); a thread of the parent
    produces chunk k + 1 while chunk k is handed out."""
    tasks = ((job, i, start, chunk) for i, (start, chunk) in enumerate(read_ahead(chunks)))
    pending: deque = deque()

    def results() -> Iterator[dict]:
        for task in tasks:
            pending.append(pool.apply_async(_run_task, (task,)))
            if len(pending) > workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    return _merge(results(), job.cfg)


def _run_task(task: tuple) -> dict:
    """Pool worker: one chunk (read here if it is a byte range)."""
    job, index, start, chunk = task
    return job.run(index, start, chunk_text(chunk))


def _merge(results, cfg: PrepareConfig) -> tuple[Counter, dict, list]:
    """Chunk results in file order -> ``(stats, shards per split, drops)``; ``drops`` lists
    ``(split, shard entry, mask)`` of records to drop as duplicate ids (``duplicate_ids=drop``),
    applied by :func:`_drop_duplicates` once every shard is written."""
    total: Counter = Counter()
    shards = {s: [] for s in SPLITS}
    seen = {s: SeenDigests() for s in SPLITS}
    drops = []
    for result in results:
        total.update(result["stats"])
        for split, entry in result["shards"].items():
            shards[split].append(entry)
            duplicate = duplicate_mask(result["digests"][split], seen[split])
            if duplicate.any():
                total["duplicate_ids"] += int(duplicate.sum())
                if cfg.duplicate_ids == "drop":
                    drops.append((split, entry, duplicate))
    return total, shards, drops


def _drop_duplicates(out_dir: Path, stats: Counter, drops: list) -> None:
    """Rewrite the shards in ``drops`` without their duplicate records; update ``stats``."""
    for split, entry, duplicate in drops:
        new = drop_records(out_dir / split, entry, duplicate)
        residues = entry["residues"] - new["residues"]
        count = int(duplicate.sum())
        stats["skip:duplicate_id"] += count
        stats["kept"] -= count
        stats[f"{split}:sequences"] -= count
        stats["residues"] -= residues
        stats[f"{split}:residues"] -= residues
        entry.clear()
        entry.update(new)


def _prepare_into(source: Path, tmp: Path, cfg: PrepareConfig, workers: int) -> dict:
    """Prepare ``source`` into the new directory ``tmp``; returns the manifest (not written)."""
    job = ChunkJob(cfg, source, tmp)
    if is_gzip(source):
        chunks = gzip_chunks(source, cfg.chunk_bytes)
        # a compressed file under a quarter chunk decompresses to about one chunk
        parallel = workers > 1 and source.stat().st_size * 4 > cfg.chunk_bytes
    else:
        chunks = plain_chunks(source, cfg.chunk_bytes)
        parallel = workers > 1 and len(chunks) > 1
    checksum: dict = {}
    hasher = threading.Thread(target=lambda: checksum.update(sha256=file_sha256(source)))
    try:
        if parallel:
            # fork (not spawn): works from notebooks and unguarded scripts; the pool is made
            # before any thread of ours starts
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                hasher.start()
                stats, shards, drops = _in_pool(pool, job, chunks, workers)
        else:
            hasher.start()
            stats, shards, drops = _in_process(job, chunks)
    finally:
        if hasher.ident is not None:  # started
            hasher.join()
    if not stats.get("read", 0):
        raise DataError(f"no records in {source}")
    _drop_duplicates(tmp, stats, drops)
    if not stats.get("kept", 0):
        skipped = ", ".join(f"{reason}={stats[f'skip:{reason}']}" for reason in SKIP_REASONS
                            if stats.get(f"skip:{reason}"))
        raise DataError(f"{source}: none of its {stats['read']} records was kept ({skipped}): "
                        "nothing to train on")
    return _build_manifest(source, checksum["sha256"], cfg, stats, shards)


def _existing(out_dir: Path, source: Path, cfg: PrepareConfig, sha256: str | None) -> dict | None:
    """The manifest of ``out_dir`` if it holds ``source`` prepared with ``cfg`` (checked with
    :func:`verify_prepared`), else ``None``."""
    try:
        manifest = load_manifest(out_dir)
    except DataError:
        return None
    if (manifest["settings"] != asdict(cfg)
            or manifest["source"]["bytes"] != source.stat().st_size
            or manifest["source"]["sha256"] != (sha256 or file_sha256(source))):
        return None
    return verify_prepared(out_dir)


def _os_error(exc: OSError, out_dir: Path) -> DataError:
    path = exc.filename or out_dir
    reason = exc.strerror or str(exc)
    return DataError(f"{path}: {reason} (while preparing {out_dir}; nothing was left there)")


def prepare(
    source: str | Path,
    out_dir: str | Path,
    cfg: PrepareConfig | None = None,
    workers: int = 1,
    overwrite: bool = False,
    source_sha256: str | None = None,
) -> dict:
    """Prepare ``source`` (FASTA, plain or .gz) into ``out_dir``; returns the manifest.

    If ``out_dir`` already holds ``source`` prepared with ``cfg`` (another process may have
    just finished it), its manifest is returned unless ``overwrite``.  ``out_dir`` must
    otherwise be absent, empty, or (with ``overwrite``) a prepared directory: a folder with
    other files is refused, and so is a ``source`` inside ``out_dir``.  Input that keeps no
    record is an error.  The directory is written under a temporary name (manifest last,
    every file fsynced) and renamed when complete, while a lock beside it keeps other
    preparations of the same ``out_dir`` waiting (see :mod:`.target`).
    ``source_sha256``, if known, saves hashing ``source`` to compare it with an existing one.
    """
    cfg = cfg or PrepareConfig()
    cfg.validate()
    source = check_exists(source).resolve()
    out_dir = Path(out_dir)
    check_source_outside(source, out_dir)
    try:
        with locked(out_dir):
            clean_leftovers(out_dir)
            if not overwrite and is_prepared(out_dir):
                manifest = _existing(out_dir, source, cfg, source_sha256)
                if manifest is not None:
                    return manifest
            check_target(out_dir, overwrite)
            tmp = temporary_name(out_dir)
            with signals_raise():  # SIGTERM / SIGHUP: the temporary is removed too
                try:
                    tmp.mkdir()
                    manifest = _prepare_into(source, tmp, cfg, workers)
                    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
                    write_file(tmp / MANIFEST, [text.encode()])  # last
                    publish(tmp, out_dir)
                finally:
                    if tmp.exists():
                        shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        raise _os_error(exc, out_dir) from None
    return manifest


def _build_manifest(source: Path, sha256: str, cfg, stats: Counter, shards: dict) -> dict:
    skipped = {reason: int(stats.get(f"skip:{reason}", 0)) for reason in SKIP_REASONS}
    manifest = {
        "format": FORMAT_VERSION,
        "alphabet": {"version": ALPHABET_VERSION, "tokens": list(ALPHABET.tokens)},
        "source": {"path": str(source), "bytes": source.stat().st_size, "sha256": sha256},
        "settings": asdict(cfg),
        "sequences_read": int(stats.get("read", 0)),
        "sequences_kept": int(stats.get("kept", 0)),
        "skipped": skipped,
        "truncated": int(stats.get("truncated", 0)),
        "duplicate_ids": int(stats.get("duplicate_ids", 0)),
        "nucleotide_like": int(stats.get("nucleotide_like", 0)),
        "residues": int(stats.get("residues", 0)),
        "splits": {
            split: {
                "sequences": int(stats.get(f"{split}:sequences", 0)),
                "residues": int(stats.get(f"{split}:residues", 0)),
                "shards": shards[split],
            }
            for split in SPLITS
        },
    }
    assert manifest["sequences_read"] == manifest["sequences_kept"] + sum(skipped.values())
    return manifest
