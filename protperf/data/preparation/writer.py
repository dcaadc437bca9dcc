"""Writing shards (the format is in :mod:`protperf.data.shards`): one file per buffer list,
CRC-32 and size recorded for the manifest, optionally in a background thread."""

from __future__ import annotations

import io
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from protperf.data.shards import SPLITS

Buffers = bytes | bytearray | memoryview | np.ndarray | list


def _buffer_list(data: Buffers) -> list:
    return data if isinstance(data, list) else [data]


def shard_entry(name: str, lengths, files: dict | None = None) -> dict:
    """The manifest entry of a shard of proteins with ``lengths`` residues; ``files`` maps
    each of :data:`~protperf.data.shards.SHARD_FILES` to ``{"bytes": size, "crc32": hex}``."""
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
