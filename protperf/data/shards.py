"""On-disk format of a prepared dataset, and memory-mapped access to it.

A prepared directory holds ``manifest.json`` and one folder per split; a shard ``NNNNN`` of a
split is three files::

    train/NNNNN.tokens.npy    (T,) uint8   residue token ids of all proteins, back to back
    train/NNNNN.offsets.npy   (N + 1,) int64  protein i is tokens[offsets[i]:offsets[i + 1]]
    train/NNNNN.ids.txt       N lines, the record ids

Tokens hold residues only; bos/eos are added by the datasets.
"""

from __future__ import annotations

import io
import json
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Version 2: the manifest lists each shard file's size and CRC-32, and the duplicate-id and
#: nucleotide counters (the shard files themselves are as in version 1).
FORMAT_VERSION = "protperf-shards-2"
SPLITS: tuple[str, ...] = ("train", "valid", "test")
MANIFEST = "manifest.json"
Buffers = bytes | bytearray | memoryview | np.ndarray | list


def _buffer_list(data: Buffers) -> list:
    return data if isinstance(data, list) else [data]


#: The three files of a shard, by the suffix after its name.
SHARD_FILES: tuple[str, ...] = ("tokens.npy", "offsets.npy", "ids.txt")


def shard_entry(name: str, lengths, files: dict | None = None) -> dict:
    """The manifest entry of a shard of proteins with ``lengths`` residues; ``files`` maps
    each of :data:`SHARD_FILES` to ``{"bytes": size, "crc32": hex}``."""
    entry = {"name": name, "sequences": len(lengths),
             "residues": int(np.asarray(lengths, dtype=np.int64).sum())}
    if files is not None:
        entry["files"] = files
    return entry


def write_file(path: Path, pieces: list) -> dict:
    """Write ``pieces`` (buffers) one after the other to ``path``; returns
    ``{"bytes": size, "crc32": 8 hex digits}``.  (Not fsynced here: a prepared directory is
    fsynced as a whole before it is renamed into place, which lets the kernel write back
    while the next chunks are parsed.)

    CRC-32 (as gzip and zip use) finds truncation and flipped bits at twice the speed of
    sha256 (about 2 GB/s; zlib releases the GIL), which keeps it a few % of preparation.
    """
    crc = 0
    size = 0
    with open(path, "wb") as handle:
        for piece in pieces:
            crc = zlib.crc32(piece, crc)
            size += handle.write(piece)
    return {"bytes": size, "crc32": f"{crc:08x}"}


def npy_header(dtype: str, size: int) -> bytes:
    """The ``.npy`` (format 1.0) header of a 1-D array of ``size`` items: what np.save writes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": dtype, "fortran_order": False, "shape": (size,)})
    return header.getvalue()


def write_shard(split_dir: Path, name: str, tokens: Buffers, lengths, ids_text: Buffers):
    """Write one shard; returns its manifest entry.

    ``tokens``: the residue token ids of all proteins back to back (uint8), as one buffer or a
    list of buffers written one after the other (no joined copy is made); ``lengths``:
    residues per protein ``(N,)``; ``ids_text``: the N record ids as UTF-8, each followed by
    ``\\n`` (buffer or list of buffers, written as is).
    """
    split_dir.mkdir(parents=True, exist_ok=True)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=offsets[1:])
    tokens = [memoryview(piece).cast("B") for piece in _buffer_list(tokens)]
    size = sum(piece.nbytes for piece in tokens)
    offsets_le = offsets.astype("<i8", copy=False)
    files = {
        "tokens.npy": write_file(split_dir / f"{name}.tokens.npy",
                                 [npy_header("|u1", size), *tokens]),
        "offsets.npy": write_file(split_dir / f"{name}.offsets.npy",
                                  [npy_header("<i8", len(offsets_le)), offsets_le.data]),
        "ids.txt": write_file(split_dir / f"{name}.ids.txt", _buffer_list(ids_text)),
    }
    return shard_entry(name, lengths, files)


class ShardWriter:
    """Writes shards with :func:`write_shard`, in a background thread if ``background``.

    In the background, :meth:`write` returns the entry at once and adds its ``files`` when
    the write is done (all are done when the ``with`` block is left).

    In the background the files of a chunk's shards are written while the caller parses the
    next chunk (file writes release the GIL).  At most ``pending`` shards wait (their buffers
    stay alive until written); leaving the ``with`` block waits for all of them and re-raises
    the first write error.
    """

    def __init__(self, background: bool = False, pending: int = len(SPLITS)):
        self._executor = (ThreadPoolExecutor(1, thread_name_prefix="protperf-write")
                          if background else None)
        self._pending: deque[Future] = deque()
        self._limit = pending

    def write(self, split_dir: Path, name: str, tokens: Buffers, lengths, ids_text: Buffers):
        if self._executor is None:
            return write_shard(split_dir, name, tokens, lengths, ids_text)
        while len(self._pending) >= self._limit:
            self._pending.popleft().result()
        entry = shard_entry(name, lengths)  # completed with its files once written

        def write_and_complete() -> None:
            entry.update(write_shard(split_dir, name, tokens, lengths, ids_text))

        self._pending.append(self._executor.submit(write_and_complete))
        return entry

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if self._executor is None:
            return
        try:
            while self._pending:
                future = self._pending.popleft()
                if exc_type is None:
                    future.result()  # raises a write error
                else:  # already failing: only wait, the first error wins
                    future.exception()
        finally:
            self._executor.shutdown(wait=True)


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"not a prepared dataset (no {MANIFEST}): {directory}; "
            "run scripts/prepare_data.py on a FASTA file first"
        )
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format {manifest.get('format')!r}, expected {FORMAT_VERSION!r}; "
            "prepare the data again"
        )
    return manifest


@dataclass
class Shard:
    tokens: np.ndarray  # (T,) uint8, memory-mapped
    offsets: np.ndarray  # (N + 1,) int64
    ids_path: Path

    def ids(self) -> list[str]:
        return self.ids_path.read_text(encoding="utf-8").splitlines()


class PreparedSplit:
    """All proteins of one split, memory-mapped: ``split[i]`` -> residue tokens ``(n_i,)``."""

    def __init__(self, directory: str | Path, split: str):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        self.directory = Path(directory)
        self.split = split
        self.manifest = read_manifest(directory)
        entries = self.manifest["splits"][split]["shards"]
        self.shards: list[Shard] = []
        for entry in entries:
            base = self.directory / split / entry["name"]
            self.shards.append(
                Shard(
                    tokens=np.load(f"{base}.tokens.npy", mmap_mode="r"),
                    offsets=np.load(f"{base}.offsets.npy"),
                    ids_path=Path(f"{base}.ids.txt"),
                )
            )
        counts = [len(s.offsets) - 1 for s in self.shards]
        #: first global protein index of each shard
        self.shard_starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self.lengths = (
            np.concatenate([np.diff(s.offsets) for s in self.shards]).astype(np.int64)
            if self.shards
            else np.zeros(0, dtype=np.int64)
        )

    def __len__(self) -> int:
        return int(self.shard_starts[-1])

    @property
    def num_residues(self) -> int:
        return int(self.lengths.sum())

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"protein index {index} out of range for {len(self)} proteins")
        shard_index = int(np.searchsorted(self.shard_starts, index, side="right")) - 1
        shard = self.shards[shard_index]
        local = index - int(self.shard_starts[shard_index])
        return shard.tokens[shard.offsets[local] : shard.offsets[local + 1]]

    def ids(self) -> list[str]:
        return [i for s in self.shards for i in s.ids()]
