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
import shutil
import threading
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

from protperf.data.alphabet import ALPHABET_VERSION, Alphabet
from protperf.data.chunk import build_chunk, build_chunk_raw, split_of  # noqa: F401 (re-exported)
from protperf.data.config import PrepareConfig
from protperf.data.duplicates import SeenDigests, drop_records, duplicate_mask
from protperf.data.fasta import (
    FASTA_ENCODING,
    FastaFormatError,
    check_exists,
    is_gzip,
    iter_fasta,
    locate_residue,
)
from protperf.data.records import split_records
from protperf.data.shards import FORMAT_VERSION, MANIFEST, SPLITS, ShardWriter, write_file
from protperf.data.stream import gzip_chunks
from protperf.data.target import (
    check_source_outside,
    check_target,
    clean_leftovers,
    is_prepared,
    locked,
    publish,
    temporary_name,
)
from protperf.data.validate import file_sha256, load_manifest, verify_prepared
from protperf.errors import DataError

SKIP_REASONS: tuple[str, ...] = (
    "empty", "invalid_characters", "too_short", "too_long", "duplicate_id")
T = TypeVar("T")


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
    titles = utf8_titles([r[0] for r in parsed], source, start)
    sequences = [r[1] for r in parsed]
    del parsed
    return build_chunk(titles, sequences, cfg, source, start, out_dir, name, writer=writer)


def utf8_titles(titles: list[str], source: Path, start: int) -> list[str]:
    """``titles`` (decoded as latin-1) decoded as UTF-8, as record ids are written; a header
    that is not valid UTF-8 is an error naming its line."""
    for k, title in enumerate(titles):
        if not title.isascii():
            raw = title.encode(FASTA_ENCODING)
            try:
                titles[k] = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = locate_residue(source, start, k, -1)
                raise FastaFormatError(
                    f"{source}: line {line}: header is not valid UTF-8 (byte "
                    f"0x{raw[exc.start]:02x} at column {exc.start + 2})") from None
    return titles


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
                        cfg: PrepareConfig) -> tuple[Counter, dict, list]:
    """All ``(start, data)`` chunks in this process: a thread produces chunk k + 1 and another
    writes chunk k - 1's shards while chunk k is parsed; returns ``_merge``'s result."""
    with ShardWriter(background=True) as writer:
        return _merge((_prepare_chunk(data, source, start, f"{i:05d}", out_dir, cfg, writer)
                       for i, (start, data) in enumerate(read_ahead(chunks))), cfg)


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
                    stats, shards, drops = _merge(
                        _bounded_map(pool, _prepare_data, tasks, workers), cfg)
            else:
                hasher.start()
                stats, shards, drops = _prepare_in_process(chunks, source, tmp, cfg)
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
                    stats, shards, drops = _merge(pool.imap(_prepare_range, tasks), cfg)
                    checksum["sha256"] = pending.get()
            else:  # one process: threads read and hash chunk k + 1 and write chunk k - 1's
                # shards while chunk k is parsed
                digest = hashlib.sha256()
                chunks = ((s, _read_range(source, s, e, digest))
                          for s, e in zip(starts, ends, strict=True))
                stats, shards, drops = _prepare_in_process(chunks, source, tmp, cfg)
                checksum["sha256"] = digest.hexdigest()
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
    other files is refused.  The directory is written under a temporary name (manifest last,
    every file fsynced) and renamed when complete, while a lock beside it keeps other
    preparations of the same ``out_dir`` waiting (see :mod:`protperf.data.target`).
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
