"""Chunk sources: a FASTA file cut into chunks of about ``chunk_bytes`` at record boundaries.

A chunk starts at the first ``>`` line at or after its target byte; the next target is
``chunk_bytes`` after this one, or just after the cut if that is later.  A plain file is cut by
byte ranges (:func:`plain_chunks`; each range is read where it is parsed); a gzipped file is
decompressed in blocks and cut at the same places as its plain copy (:func:`gzip_chunks`), so a
``.gz`` gives the same chunks, hence the same shards, as the file it holds.  Either source
yields ``(start, chunk)``: the chunk's first byte in the (decompressed) file and its text or
:class:`FileRange` (:func:`chunk_text` gives the text of either).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from protperf.data.fasta import FastaFormatError

T = TypeVar("T")


@dataclass(frozen=True)
class FileRange:
    """Bytes ``start:end`` of a plain file, read only when needed (by the pool worker that
    parses them, so the parent never holds the text)."""

    path: Path
    start: int
    end: int

    def read(self) -> bytearray:
        data = bytearray(self.end - self.start)
        with open(self.path, "rb") as handle:
            handle.seek(self.start)
            del data[handle.readinto(data):]
        return data


def chunk_text(chunk: bytearray | FileRange) -> bytearray:
    """The text of a chunk from either source."""
    return chunk.read() if isinstance(chunk, FileRange) else chunk


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


def plain_chunks(path: Path, chunk_bytes: int) -> list[tuple[int, FileRange]]:
    """``(start, FileRange)`` chunks of a plain FASTA file, cut at :func:`chunk_starts`."""
    starts = chunk_starts(path, chunk_bytes)
    ends = starts[1:] + [path.stat().st_size]
    return [(s, FileRange(path, s, e)) for s, e in zip(starts, ends, strict=True)]


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """The items of ``items``, item k + 1 being produced in a thread while the caller works
    on item k (reading and decompressing release the GIL)."""
    done = object()
    items = iter(items)
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


def gunzip_blocks(source: Path, block: int = 1 << 22) -> Iterator[bytes]:
    """The decompressed bytes of a gzip file, in pieces (zlib on ``block``-byte reads).

    Follows the gzip format as Python's ``gzip`` module reads it: several members one after
    the other, zero padding between or after them; each member's CRC-32 and length are
    checked by zlib.  A truncated or corrupt file raises :class:`FastaFormatError` naming it.
    """
    import zlib

    def corrupt(reason) -> FastaFormatError:
        return FastaFormatError(f"{source}: truncated or corrupt gzip file ({reason})")

    member = zlib.decompressobj(wbits=31)  # 16 + 15: gzip header and trailer
    started = False  # the current member has received data
    with open(source, "rb") as handle:
        while data := handle.read(block):
            while data:
                if not started:
                    data = data.lstrip(b"\0")  # padding between members
                    if not data:
                        break
                    started = True
                try:
                    out = member.decompress(data)
                except zlib.error as exc:
                    raise corrupt(exc) from exc
                if out:
                    yield out
                data = b""
                if member.eof:  # next member (or padding) after this one
                    data = member.unused_data
                    member, started = zlib.decompressobj(wbits=31), False
    if started:
        raise corrupt("the file ends inside a gzip member: the download may be incomplete")


def gzip_chunks(source: Path, chunk_bytes: int) -> Iterator[tuple[int, bytearray]]:
    """``(start, text)`` chunks of a gzipped FASTA file, cut exactly where
    :func:`chunk_starts` cuts the decompressed file, so a ``.gz`` and its plain copy give the
    same chunks."""
    return cut_chunks(gunzip_blocks(source), chunk_bytes)


def cut_chunks(pieces: Iterable[bytes], chunk_bytes: int) -> Iterator[tuple[int, bytearray]]:
    """``(start, text)`` chunks of the text that ``pieces`` make up when joined, cut where
    :func:`chunk_starts` cuts a file: at the first ``>`` line at or after a target; the next
    target is ``chunk_bytes`` after this one, or just after the cut if that is later."""
    buffer = bytearray()
    base = 0  # position of buffer[0] in the decompressed file
    begin = 0  # chunk start, in buffer
    searched = 0  # buffer[:searched] holds no cut
    target = chunk_bytes
    emitted = False
    for piece in itertools.chain(pieces, [b""]):
        if begin:  # drop what was handed out
            del buffer[:begin]
            base, searched, begin = base + begin, max(searched - begin, 0), 0
        buffer += piece
        while True:
            hit = buffer.find(b"\n>", max(target - 1 - base, searched))
            if hit < 0:
                searched = max(len(buffer) - 1, target - 1 - base, searched)
                break
            cut = hit + 1  # the '>'
            if begin == 0 and len(buffer) - cut <= cut:  # hand out the buffer itself
                chunk, buffer = buffer, buffer[cut:]
                del chunk[cut:]
                base, searched, cut = base + cut, 0, 0
                yield base - len(chunk), chunk
            else:
                yield base + begin, buffer[begin:cut]
            emitted = True
            target = max(base + cut + 1, target + chunk_bytes)
            begin = cut
    if len(buffer) > begin or not emitted:
        yield base + begin, buffer[begin:]
