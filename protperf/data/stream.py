"""Decompressing a gzipped FASTA file in blocks and cutting the text into the chunks that
:func:`protperf.data.prepare.chunk_starts` would cut from its plain copy."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

from protperf.data.fasta import FastaFormatError


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
