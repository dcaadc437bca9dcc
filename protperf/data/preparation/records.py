"""The records of one FASTA chunk, all back to back: residue tokens, lengths and ids.

:func:`parse_chunk` uses :func:`split_records`, a vectorized splitter (numpy over the chunk's
bytes), and falls back to :func:`reference_records` (biopython's ``SimpleFastaParser``, through
:mod:`protperf.data.fasta`) for chunks the splitter declines.  Both give the same records.

:func:`split_records` finds header lines from the positions of ``\\n``, blanks the header
bytes, and deletes the whitespace of all sequences with one ``bytes.translate``, without a
Python loop over lines.  It only accepts chunks whose semantics are simple, and returns ``None``
for anything else (the reference parser then also produces the errors):

- the chunk starts with ``>`` (no text or blank lines before the first header);
- every byte is ASCII, and the only control characters are ``\\n`` and ``\\r``.

Under these conditions the whitespace Python's ``str.rstrip``/``str.split`` see is exactly
space, ``\\r`` and ``\\n``, so ``SimpleFastaParser``'s rules (title = header line without
``>``, right-stripped; sequence = its lines right-stripped, joined, spaces and ``\\r``
removed) reduce to: sequence = the bytes between the header line and the next header line with
every space, ``\\r`` and ``\\n`` deleted; record id (first word of the title) = the title's
bytes up to its first space or ``\\r``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from operator import methodcaller
from pathlib import Path

import numpy as np

from protperf.data.alphabet import ENCODE_TABLE, INVALID_TOKEN
from protperf.data.fasta import FASTA_ENCODING, FastaFormatError, iter_fasta, locate_residue

#: ``ENCODE_TABLE`` with ``*`` mapped to ``STOP_CODE`` instead of ``INVALID_TOKEN``: a chunk is
#: translated once, and a trailing stop codon is told apart from other invalid bytes.
STOP_CODE = 254
CHUNK_TABLE = ENCODE_TABLE[: ord("*")] + bytes([STOP_CODE]) + ENCODE_TABLE[ord("*") + 1 :]
assert STOP_CODE not in ENCODE_TABLE and INVALID_TOKEN > STOP_CODE
_NEWLINE, _CR, _SPACE, _GT = 10, 13, 32, 62
_WHITESPACE = b" \r\n"


def spans_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions ``starts[i] + j`` for ``j < lengths[i]``, all spans concatenated."""
    total = int(lengths.sum())
    shift = starts - (np.cumsum(lengths) - lengths)
    return np.arange(total, dtype=np.int64) + np.repeat(shift, lengths)


@dataclass
class RecordIds:
    """The record ids of a chunk as one UTF-8 text, each id followed by ``\n`` (the bytes an
    ``ids.txt`` shard file holds): id ``i`` is ``text[starts[i]:ends[i] - 1]``."""

    text: bytes
    starts: np.ndarray  # (N,) int64
    ends: np.ndarray  # (N,) int64, just after the id's '\n'

    @classmethod
    def from_list(cls, ids: list[str]) -> RecordIds:
        text = "".join(f"{i}\n" for i in ids).encode("utf-8")
        keys = text.split(b"\n")
        keys.pop()
        spans = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys)) + 1
        ends = np.cumsum(spans)
        return cls(text, ends - spans, ends)

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: int) -> str:
        return self.text[self.starts[index] : self.ends[index] - 1].decode("utf-8")

    def keys(self) -> list[bytes]:
        """The ids as UTF-8 bytes (what the split hash is computed on)."""
        keys = self.text.split(b"\n")
        keys.pop()  # after the last '\n'
        return keys


def _record_ids(titles: list[str]) -> list[str]:
    """First word of each title (``""`` for an empty one), like ``title.split()[0]``.

    Fast path: cut at the first space; valid when every result is non-empty and has no other
    whitespace (whitespace characters are exactly the non-printable or space ones).
    """
    ids = [t.partition(" ")[0] for t in titles]
    if all(ids) and "".join(ids).isprintable():
        return ids
    return [w[0] if w else "" for w in map(methodcaller("split", None, 1), titles)]


@dataclass
class ChunkRecords:
    """Records of a chunk: ids and residues, all records back to back."""

    #: the residues translated with :data:`CHUNK_TABLE` (stop codons included), (T,) uint8
    tokens: np.ndarray
    lengths: np.ndarray  # (N,) int64, residues per record (whitespace removed)
    #: the record ids (first word of each title; ``""`` for a header without one)
    ids: RecordIds
    #: the titles (not right-stripped), kept when an id may be empty (to name it in the error)
    titles: list[str] | None
    #: all residues back to back, whitespace removed (latin-1 bytes); only for error messages
    residues: Callable[[], bytes]


def parse_chunk(data: bytearray, source: Path, start: int) -> ChunkRecords:
    """The records of a chunk of FASTA text that starts at byte ``start`` of the (decompressed)
    file ``source`` (named in errors).  ``data`` is used as a work buffer and overwritten."""
    records = split_records(data)
    if records is not None:
        return records
    return reference_records(data, source, start)  # declined: data unchanged but a final \n


def reference_records(data: bytes | bytearray, source: Path, start: int) -> ChunkRecords:
    """:func:`parse_chunk` with the reference parser (any chunk; raises its format errors)."""
    parsed = list(iter_fasta(io.StringIO(data.decode(FASTA_ENCODING)), source))
    titles = utf8_titles([title for title, _ in parsed], source, start)
    lengths = np.fromiter((len(s) for _, s in parsed), dtype=np.int64, count=len(parsed))
    raw = "".join(s for _, s in parsed).encode(FASTA_ENCODING)
    del parsed
    tokens = np.frombuffer(raw.translate(CHUNK_TABLE), dtype=np.uint8)
    ids = RecordIds.from_list(_record_ids(titles))
    return ChunkRecords(tokens, lengths, ids, titles, lambda: raw)


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


def split_records(data: bytes | bytearray, keep_titles: bool = False) -> ChunkRecords | None:
    """Split a plain FASTA chunk into records, or ``None`` when the chunk needs the reference
    parser (see the module docstring).  The titles are kept when the ids cannot be cut in
    bulk (then the ids are taken from them), or when ``keep_titles`` is set (for tests).

    A ``bytearray`` is used as the work buffer and overwritten (saves a copy of the chunk),
    unless ``None`` is returned: then it may only have gained a final ``\n``.
    """
    if not data.startswith(b">") or not data.isascii():
        return None
    buffer = data if isinstance(data, bytearray) else bytearray(data)
    if not buffer.endswith(b"\n"):
        buffer.append(_NEWLINE)  # a missing final newline changes nothing for the parser
    array = np.frombuffer(buffer, dtype=np.uint8)
    size = array.size
    # every control byte and space, in one pass: newlines cut lines, spaces and CRs cut ids,
    # and all three are deleted from sequences
    blanks = np.flatnonzero(array <= _SPACE)
    blank_bytes = array[blanks]
    at_newline = blank_bytes == _NEWLINE
    at_cut = (blank_bytes == _SPACE) | (blank_bytes == _CR)
    if not np.all(at_newline | at_cut):
        return None  # tabs, form feeds, ...: whitespace rules differ, use the reference parser
    newlines = blanks[at_newline]
    cuts = blanks[at_cut]
    line_starts = newlines[:-1] + 1
    header_starts = np.concatenate(([0], line_starts[array[line_starts] == _GT]))
    header_ends = newlines[np.searchsorted(newlines, header_starts)]  # the header's '\n'
    title_starts = header_starts + 1

    # ids: each title up to its first space or CR (or its end), gathered with the byte after it
    word_ends = np.minimum(np.append(cuts, size)[np.searchsorted(cuts, title_starts)],
                           header_ends)
    word_lengths = word_ends - title_starts
    ids = titles = None
    if word_lengths.all():
        spans = word_lengths + 1
        words = array[spans_index(title_starts, spans)]
        ends = np.cumsum(spans)
        words[ends - 1] = _NEWLINE
        ids = RecordIds(words.tobytes(), ends - spans, ends)
    if ids is None or keep_titles:  # ids None: a title empty or starting with a space
        header_bytes = array[spans_index(title_starts, header_ends - header_starts)]
        titles = header_bytes.tobytes().decode(FASTA_ENCODING).split("\n")
        titles.pop()  # after the last '\n'
        if ids is None:
            ids = RecordIds.from_list(_record_ids(titles))

    # blank the headers to '\n', then delete all whitespace: the sequences, back to back
    array[spans_index(header_starts, header_ends - header_starts)] = _NEWLINE
    region_starts = header_ends + 1
    region_ends = np.append(header_starts[1:], size)
    deleted = np.searchsorted(blanks, region_ends) - np.searchsorted(blanks, region_starts)
    lengths = (region_ends - region_starts - deleted).astype(np.int64)
    tokens = np.frombuffer(buffer.translate(CHUNK_TABLE, _WHITESPACE), dtype=np.uint8)
    return ChunkRecords(tokens, lengths, ids, titles, partial(buffer.translate, None, _WHITESPACE))
