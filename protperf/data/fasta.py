"""Streaming FASTA reading (plain or gzipped) on top of biopython's ``SimpleFastaParser``.

Records come out as ``(record_id, residues)`` where ``record_id`` is the first word of the
header and ``residues`` the raw sequence string (whitespace and ``\\r`` removed).  Turning
residues into tokens is done a chunk at a time in :mod:`protperf.data.preparation.chunk`.

Errors are :class:`FastaFormatError` and name the file and line.
"""

from __future__ import annotations

import gzip
import io
import itertools
import stat
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from protperf.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"
#: Text encoding of FASTA input: every byte maps to one character, so non-ASCII bytes survive
#: to tokenization and are reported there as invalid characters.
FASTA_ENCODING = "latin-1"


class FastaFormatError(DataError):
    """Malformed FASTA input; the message names the file, line and record."""


def check_exists(path: str | Path) -> Path:
    """``path`` if it is a regular file; a directory, FIFO, socket or device is refused
    before it is opened (a FIFO would block, and the input is read more than once)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"FASTA file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the FASTA file ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"{path}: is a directory, not a FASTA file")
    if not stat.S_ISREG(mode):
        raise DataError(f"{path}: not a regular file (a FIFO, socket or device); the input is "
                        "read more than once, so save it to a file first")
    return path


def is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def open_binary(path: str | Path):
    """Open a FASTA file for reading bytes, decompressing ``.gz`` (by magic number)."""
    path = check_exists(path)
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def open_text(path: str | Path) -> io.TextIOBase:
    """Text handle over a plain or gzipped FASTA file (lines split on ``\\n`` only)."""
    return io.TextIOWrapper(open_binary(path), encoding=FASTA_ENCODING, newline="\n")


def record_id(title: str, source: str | Path, line: int | None = None) -> str:
    """The record id: first word of the header (``UniRef50_Q6GZX4 ...`` -> ``UniRef50_Q6GZX4``)."""
    parts = title.split(None, 1)
    if not parts:
        where = f"{source}: line {line}" if line is not None else str(source)
        raise FastaFormatError(f"{where}: empty FASTA header ('>' with no record id)")
    return parts[0]


def check_header_first(lines: Iterable[str], source: str | Path, first_line: int = 1):
    """Return an iterator over ``lines`` that raises if content precedes the first ``>``.

    Blank lines before the first header are allowed (biopython ignores them too).
    """
    iterator = iter(lines)
    line_no = first_line
    for line in iterator:
        if line.startswith(">"):
            return itertools.chain([line], iterator)
        if line.strip():
            raise FastaFormatError(
                f"{source}: line {line_no}: content before the first '>' header: "
                f"{line.strip()[:40]!r}"
            )
        line_no += 1
    return iter(())


def iter_fasta(lines: Iterable[str], source: str | Path) -> Iterator[tuple[str, str]]:
    """Yield ``(title, residues)`` from FASTA text lines, checking the start of the text."""
    # imported here: plain files mostly go through protperf.data.preparation.records, and importing
    # Bio.SeqIO costs ~0.15 CPU-s per process
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    yield from SimpleFastaParser(check_header_first(lines, source))


def read_fasta(path: str | Path) -> Iterator[tuple[str, str]]:
    """Stream ``(record_id, residues)`` from a plain or gzipped FASTA file.

    A truncated or corrupt ``.gz`` raises :class:`FastaFormatError` naming the file.
    """
    path = check_exists(path)
    with open_text(path) as handle:
        try:
            for title, residues in iter_fasta(handle, path):
                yield record_id(title, path), residues
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise FastaFormatError(f"{path}: truncated or corrupt gzip file ({exc})") from exc


def locate_residue(
    path: str | Path, start_byte: int, record_index: int, residue_index: int
) -> int:
    """1-based line number of residue ``residue_index`` of the ``record_index``-th record
    (0-based) counted from byte ``start_byte`` of the (decompressed) file; the line of its
    header when ``residue_index`` is negative.

    Only used to write error messages, so it re-reads the file instead of slowing the
    fast path with line bookkeeping.
    """
    with open_binary(path) as handle:
        line_no = 1
        remaining = start_byte
        while remaining > 0:
            block = handle.read(min(remaining, 1 << 20))
            if not block:
                break
            line_no += block.count(b"\n")
            remaining -= len(block)
        headers_seen = -1
        count = 0
        for line in handle:
            if line.startswith(b">"):
                headers_seen += 1
                if headers_seen == record_index and residue_index < 0:
                    return line_no
            elif headers_seen == record_index:
                count += len(line.strip().replace(b" ", b""))
                if count > residue_index:
                    return line_no
            if headers_seen > record_index:
                break
            line_no += 1
    return line_no
