"""FASTA -> a prepared directory of memory-mapped token shards and a JSON manifest.

The input is cut into chunks of ``chunk_bytes`` at record boundaries; each chunk becomes one
shard per split (``NNNNN`` = chunk number).  A chunk starts at the first ``>`` line at or after
its target byte (:func:`chunk_starts`).  Plain files are cut by byte ranges and the chunks run
in a pool of processes (or, with one process, a thread reads and hashes chunk k + 1 while chunk
k is parsed).  Gzipped files are decompressed in blocks by a reader thread and cut at the same
places as their plain copy (:mod:`protperf.data.stream`), so a ``.gz`` gives the same shards as the
file it holds; with several processes the parent decompresses and the pool parses.  Chunks do
not depend on the number of processes, so the output is byte-identical for any ``workers``;
memory is bounded by a few chunks per process, whatever the input size.

Split rule: ``u = int(blake2b(id, digest_size=8)) / 2**64``; ``u < test_fraction`` -> test,
``u < test_fraction + valid_fraction`` -> valid, else train.  It depends on the record id
only (UniRef cluster id), so an id lands in the same split on every run and machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import shutil
import threading
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

from protperf.data.alphabet import ALPHABET_VERSION, Alphabet
from protperf.data.chunk import build_chunk, build_chunk_raw, split_of  # noqa: F401 (re-exported)
from protperf.data.config import PrepareConfig
from protperf.data.fasta import (
    FASTA_ENCODING,
    check_exists,
    is_gzip,
    iter_fasta,
)
from protperf.data.records import split_records
from protperf.data.shards import FORMAT_VERSION, MANIFEST, SPLITS, ShardWriter
from protperf.data.stream import gzip_chunks

SKIP_REASONS: tuple[str, ...] = ("empty", "invalid_characters", "too_short", "too_long")
T = TypeVar("T")


def file_sha256(path: str | Path, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def chunk_starts(path: Path, chunk_bytes: int) -> list[int]:
    """Byte offsets where chunks of a plain FASTA file start (each at a ``>`` line)."""
    size = path.stat().st_size
    starts = [0]
    with open(path, "rb") as handle:
        target = chunk_bytes
        while target < size:
            handle.seek(target - 1)
            pos = target - 1
            found = -1
            while True:
                block = handle.read(1 << 20)
                if not block:
                    break
                hit = block.find(b"\n>")
                if hit >= 0:
                    found = pos + hit + 1
                    break
                if len(block) < (1 << 20):
                    break
                pos += len(block) - 1  # keep one byte overlap for a split "\n>"
                handle.seek(pos)
            if found < 0:
                break
            if found > starts[-1]:
                starts.append(found)
            target = max(found + 1, target + chunk_bytes)
    return starts


def _prepare_chunk(data: bytearray, source: Path, start: int, name: str, out_dir: Path,
                   cfg: PrepareConfig, writer: ShardWriter | None = None) -> dict:
    """One chunk of FASTA text (starting at byte ``start`` of the decompressed file) -> one
    shard per split, written with ``writer`` if given.  ``data`` is used as a work buffer and
    overwritten."""
    records = split_records(data)
    if records is not None:  # the vectorized splitter (same records as the reference parser)
        del data
        titles = records.titles if records.ids is None else None  # only needed without ids
        return build_chunk_raw(titles, records.residues, records.lengths, cfg, source, start,
                               out_dir, name, ids=records.ids, tokens=records.tokens,
                               writer=writer)
    text = data.decode(FASTA_ENCODING)  # declined: data unchanged but a final \n
    del data
    parsed = list(iter_fasta(io.StringIO(text), source))
    del text
    titles = [r[0] for r in parsed]
    sequences = [r[1] for r in parsed]
    del parsed
    return build_chunk(titles, sequences, cfg, source, start, out_dir, name, writer=writer)


def _read_range(source: Path, start: int, end: int, digest=None) -> bytearray:
    """Bytes ``start:end`` of a plain file; fed to ``digest`` (a hashlib object) if given."""
    data = bytearray(end - start)
    with open(source, "rb") as handle:
        handle.seek(start)
        del data[handle.readinto(data):]
    if digest is not None:
        digest.update(data)  # releases the GIL: runs beside the main thread's parsing
    return data


def _prepare_range(task: tuple) -> dict:
    """Pool worker: one byte range of a plain file -> one shard per split."""
    source, start, end, name, out_dir, cfg = task
    return _prepare_chunk(_read_range(Path(source), start, end), Path(source), start, name,
                          Path(out_dir), cfg)


def _prepare_data(task: tuple) -> dict:
    """Pool worker: one chunk of text handed over by the parent (a gzip stream)."""
    source, start, name, out_dir, cfg, data = task
    return _prepare_chunk(data, Path(source), start, name, Path(out_dir), cfg)


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """The items of ``items``, item k + 1 being produced in a thread while the caller works
    on item k (reading and decompressing release the GIL)."""
    done = object()
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="protperf-read") as reader:
            pending = reader.submit(next, items, done)
            while (item := pending.result()) is not done:
                pending = reader.submit(next, items, done)
                yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _prepare_in_process(chunks: Iterator[tuple[int, bytearray]], source: Path, out_dir: Path,
                        cfg: PrepareConfig) -> tuple[Counter, dict]:
    """All ``(start, data)`` chunks in this process: a thread produces chunk k + 1 and another
    writes chunk k - 1's shards while chunk k is parsed; returns ``_merge``'s result."""
    with ShardWriter(background=True) as writer:
        return _merge(_prepare_chunk(data, source, start, f"{i:05d}", out_dir, cfg, writer)
                      for i, (start, data) in enumerate(read_ahead(chunks)))


def _bounded_map(pool, function, tasks: Iterator, ahead: int) -> Iterator:
    """``pool.imap(function, tasks)`` that takes at most ``ahead`` tasks ahead of the results
    (``imap`` would read the whole input into memory)."""
    pending: deque = deque()
    for task in tasks:
        pending.append(pool.apply_async(function, (task,)))
        if len(pending) > ahead:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def _merge(results) -> tuple[Counter, dict]:
    total: Counter = Counter()
    shards = {s: [] for s in SPLITS}
    for result in results:
        total.update(result["stats"])
        for split, entry in result["shards"].items():
            shards[split].append(entry)
    return total, shards


def prepare(
    source: str | Path,
    out_dir: str | Path,
    cfg: PrepareConfig | None = None,
    workers: int = 1,
    overwrite: bool = False,
) -> dict:
    """Prepare ``source`` (FASTA, plain or .gz) into ``out_dir``; returns the manifest.

    The directory is written under a temporary name and renamed when complete, so a
    directory with a ``manifest.json`` is always whole.
    """
    cfg = cfg or PrepareConfig()
    cfg.validate()
    source = check_exists(source).resolve()
    out_dir = Path(out_dir)
    if (out_dir / MANIFEST).exists() and not overwrite:
        raise FileExistsError(f"{out_dir} is already prepared; pass overwrite=True (--force)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    checksum: dict = {}
    hasher = threading.Thread(target=lambda: checksum.update(sha256=file_sha256(source)))
    # fork (not spawn): works from notebooks and unguarded scripts; the pool is made before any
    # thread of ours starts
    fork = multiprocessing.get_context("fork")
    try:
        if is_gzip(source):
            chunks = gzip_chunks(source, cfg.chunk_bytes)
            # a compressed file under a quarter chunk decompresses to about one chunk
            if workers > 1 and source.stat().st_size * 4 > cfg.chunk_bytes:
                with fork.Pool(workers) as pool:
                    hasher.start()
                    tasks = ((str(source), start, f"{i:05d}", str(tmp), cfg, data)
                             for i, (start, data) in enumerate(read_ahead(chunks)))
                    stats, shards = _merge(_bounded_map(pool, _prepare_data, tasks, workers))
            else:
                hasher.start()
                stats, shards = _prepare_in_process(chunks, source, tmp, cfg)
        else:
            starts = chunk_starts(source, cfg.chunk_bytes)
            ends = starts[1:] + [source.stat().st_size]
            if workers > 1 and len(starts) > 1:
                tasks = [
                    (str(source), s, e, f"{i:05d}", str(tmp), cfg)
                    for i, (s, e) in enumerate(zip(starts, ends, strict=True))
                ]
                with fork.Pool(min(workers, len(tasks))) as pool:
                    # the checksum runs as one more task
                    pending = pool.apply_async(file_sha256, (source,))
                    stats, shards = _merge(pool.imap(_prepare_range, tasks))
                    checksum["sha256"] = pending.get()
            else:  # one process: threads read and hash chunk k + 1 and write chunk k - 1's
                # shards while chunk k is parsed
                digest = hashlib.sha256()
                chunks = ((s, _read_range(source, s, e, digest))
                          for s, e in zip(starts, ends, strict=True))
                stats, shards = _prepare_in_process(chunks, source, tmp, cfg)
                checksum["sha256"] = digest.hexdigest()
        if hasher.ident is not None:  # started
            hasher.join()
        manifest = _build_manifest(source, checksum["sha256"], cfg, stats, shards)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if out_dir.exists():
            if overwrite or not (out_dir / MANIFEST).exists():
                shutil.rmtree(out_dir)
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if not (out_dir / MANIFEST).exists():  # someone else finished first: keep theirs
                raise
    finally:
        if hasher.ident is not None:
            hasher.join()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _build_manifest(source: Path, sha256: str, cfg, stats: Counter, shards: dict) -> dict:
    alphabet = Alphabet()
    skipped = {reason: int(stats.get(f"skip:{reason}", 0)) for reason in SKIP_REASONS}
    manifest = {
        "format": FORMAT_VERSION,
        "alphabet": {"version": ALPHABET_VERSION, "tokens": list(alphabet.tokens)},
        "source": {"path": str(source), "bytes": source.stat().st_size, "sha256": sha256},
        "settings": asdict(cfg),
        "sequences_read": int(stats.get("read", 0)),
        "sequences_kept": int(stats.get("kept", 0)),
        "skipped": skipped,
        "truncated": int(stats.get("truncated", 0)),
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
