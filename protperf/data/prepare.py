"""FASTA -> a prepared directory of memory-mapped token shards and a JSON manifest.

The input is cut into chunks of ``chunk_bytes`` at record boundaries; each chunk becomes one
shard per split (``NNNNN`` = chunk number).  Plain files are cut by byte ranges (the chunk
starts at the first ``>`` line at or after ``k * chunk_bytes``) and the chunks run in a pool of
processes; gzipped files cannot be seeked, so one process streams them and closes a chunk
whenever ``chunk_bytes`` of text have been read.  Chunks do not depend on the number of
processes, so the output is byte-identical for any ``workers``; memory is bounded by a few
chunks per process, whatever the input size.

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
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from protperf.data.alphabet import ALPHABET_VERSION, Alphabet
from protperf.data.chunk import build_chunk, split_of  # noqa: F401 (re-exported)
from protperf.data.config import PrepareConfig
from protperf.data.fasta import (
    FASTA_ENCODING,
    FastaFormatError,
    check_exists,
    is_gzip,
    iter_fasta,
    open_text,
)
from protperf.data.shards import FORMAT_VERSION, MANIFEST, SPLITS

SKIP_REASONS: tuple[str, ...] = ("empty", "invalid_characters", "too_short", "too_long")


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


def _prepare_range(task: tuple) -> dict:
    """Worker: one byte range of a plain file -> one shard per split."""
    source, start, end, name, out_dir, cfg = task
    with open(source, "rb") as handle:
        handle.seek(start)
        text = handle.read(end - start).decode(FASTA_ENCODING)
    records = list(iter_fasta(io.StringIO(text), source))
    del text
    titles = [r[0] for r in records]
    sequences = [r[1] for r in records]
    del records
    return build_chunk(titles, sequences, cfg, Path(source), start, Path(out_dir), name)


def _prepare_stream(source: Path, out_dir: Path, cfg: PrepareConfig):
    """A gzipped file: stream it in this process, closing a chunk every ``chunk_bytes``."""
    import gzip
    import zlib

    chunk, consumed, first_index = 0, 0, 0
    titles: list[str] = []
    sequences: list[str] = []

    def flush():
        # errors in a stream are located by the record's index from the file start
        return build_chunk(titles, sequences, cfg, source, 0, out_dir, f"{chunk:05d}",
                           first_index=first_index)

    with open_text(source) as handle:
        try:
            for title, residues in iter_fasta(handle, source):
                titles.append(title)
                sequences.append(residues)
                consumed += len(title) + len(residues) + 2
                if consumed >= cfg.chunk_bytes:
                    yield flush()
                    first_index += len(titles)
                    chunk, consumed, titles, sequences = chunk + 1, 0, [], []
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise FastaFormatError(f"{source}: truncated or corrupt gzip file ({exc})") from exc
    yield flush()


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
    try:
        if is_gzip(source):
            hasher.start()
            stats, shards = _merge(_prepare_stream(source, tmp, cfg))
        else:
            starts = chunk_starts(source, cfg.chunk_bytes)
            ends = starts[1:] + [source.stat().st_size]
            tasks = [
                (str(source), s, e, f"{i:05d}", str(tmp), cfg)
                for i, (s, e) in enumerate(zip(starts, ends, strict=False))
            ]
            if workers > 1 and len(tasks) > 1:
                # fork (not spawn): works from notebooks and unguarded scripts; no thread of
                # ours is running yet, the checksum runs as one more pool task.
                ctx = multiprocessing.get_context("fork")
                with ctx.Pool(min(workers, len(tasks))) as pool:
                    pending = pool.apply_async(file_sha256, (source,))
                    stats, shards = _merge(pool.imap(_prepare_range, tasks))
                    checksum["sha256"] = pending.get()
            else:
                hasher.start()
                stats, shards = _merge(map(_prepare_range, tasks))
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
