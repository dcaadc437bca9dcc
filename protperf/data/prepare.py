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
from protperf.data.config import PrepareConfig
from protperf.data.fasta import (
    FASTA_ENCODING,
    FastaFormatError,
    check_exists,
    is_gzip,
    iter_fasta,
    locate_residue,
    open_text,
    record_id,
    tokenize_residues,
)
from protperf.data.shards import FORMAT_VERSION, MANIFEST, SPLITS, write_shard

SKIP_REASONS: tuple[str, ...] = ("empty", "invalid_characters", "too_short", "too_long")
_HASH_SCALE = float(2**64)
_blake2b = hashlib.blake2b


def split_of(rid: str, valid_fraction: float, test_fraction: float) -> str:
    """Deterministic split of a record id (see the module docstring)."""
    digest = hashlib.blake2b(rid.encode("utf-8"), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / _HASH_SCALE
    if u < test_fraction:
        return "test"
    if u < test_fraction + valid_fraction:
        return "valid"
    return "train"


def file_sha256(path: str | Path, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


class _ChunkBuilder:
    """Collects the kept records of one chunk per split and counts everything read."""

    def __init__(self, cfg: PrepareConfig, source: Path, start_byte: int):
        self.cfg = cfg
        self.source = source
        self.start_byte = start_byte
        self.stats: Counter = Counter()
        self.buffers = {s: (bytearray(), [], []) for s in SPLITS}
        # same rule as split_of(), inlined for speed
        self._test_cut = cfg.test_fraction
        self._valid_cut = cfg.test_fraction + cfg.valid_fraction

    def add(self, title: str, residues: str, record_index: int) -> None:
        """Add one record; ``record_index`` counts records from ``start_byte`` (for errors)."""
        cfg = self.cfg
        stats = self.stats
        stats["read"] += 1
        words = title.split(None, 1)
        if not words:
            line = locate_residue(self.source, self.start_byte, record_index, -1)
            record_id(title, self.source, line)  # raises with the line number
        rid = words[0]
        tokens, bad = tokenize_residues(residues)
        if not tokens:
            stats["skip:empty"] += 1
            return
        if bad >= 0:
            if cfg.on_invalid == "error":
                line = locate_residue(self.source, self.start_byte, record_index, bad)
                raise FastaFormatError(
                    f"{self.source}: line {line}: record {rid!r}: invalid character "
                    f"{residues[bad]!r} (not an amino-acid letter); set "
                    "data.on_invalid=skip to skip such records"
                )
            stats["skip:invalid_characters"] += 1
            return
        n = len(tokens)
        if n < cfg.min_residues:
            stats["skip:too_short"] += 1
            return
        if cfg.max_residues is not None and n > cfg.max_residues:
            if cfg.long_policy == "skip":
                stats["skip:too_long"] += 1
                return
            tokens = tokens[: cfg.max_residues]
            n = cfg.max_residues
            stats["truncated"] += 1
        u = int.from_bytes(_blake2b(rid.encode(), digest_size=8).digest(), "big") / _HASH_SCALE
        split = "test" if u < self._test_cut else ("valid" if u < self._valid_cut else "train")
        buf, lengths, ids = self.buffers[split]
        buf += tokens
        lengths.append(n)
        ids.append(rid)

    def flush(self, out_dir: Path, name: str) -> dict:
        """Write the non-empty splits as shard ``name``; returns stats and shard entries."""
        entries = {}
        for split, (buf, lengths, ids) in self.buffers.items():
            residues = sum(lengths)
            self.stats["kept"] += len(lengths)
            self.stats["residues"] += residues
            self.stats[f"{split}:sequences"] += len(lengths)
            self.stats[f"{split}:residues"] += residues
            if lengths:
                entries[split] = write_shard(out_dir / split, name, bytes(buf), lengths, ids)
        result = {"stats": dict(self.stats), "shards": entries}
        self.stats = Counter()
        self.buffers = {s: (bytearray(), [], []) for s in SPLITS}
        return result


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
    builder = _ChunkBuilder(cfg, Path(source), start)
    for index, (title, residues) in enumerate(iter_fasta(io.StringIO(text), source)):
        builder.add(title, residues, index)
    return builder.flush(Path(out_dir), name)


def _prepare_stream(source: Path, out_dir: Path, cfg: PrepareConfig):
    """A gzipped file: stream it in this process, closing a chunk every ``chunk_bytes``."""
    import gzip
    import zlib

    builder = _ChunkBuilder(cfg, source, 0)
    chunk, consumed = 0, 0
    with open_text(source) as handle:
        try:
            for index, (title, residues) in enumerate(iter_fasta(handle, source)):
                builder.add(title, residues, index)
                consumed += len(title) + len(residues) + 2
                if consumed >= cfg.chunk_bytes:
                    yield builder.flush(out_dir, f"{chunk:05d}")
                    chunk, consumed = chunk + 1, 0
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise FastaFormatError(f"{source}: truncated or corrupt gzip file ({exc})") from exc
    yield builder.flush(out_dir, f"{chunk:05d}")


def _merge(results, out_dir: Path) -> tuple[Counter, dict]:
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
            stats, shards = _merge(_prepare_stream(source, tmp, cfg), tmp)
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
                    stats, shards = _merge(pool.imap(_prepare_range, tasks), tmp)
                    checksum["sha256"] = pending.get()
            else:
                hasher.start()
                stats, shards = _merge(map(_prepare_range, tasks), tmp)
        if hasher.is_alive() or hasher.ident is not None:
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
