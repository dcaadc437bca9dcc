"""Vectorized record splitting of a plain-text FASTA chunk (numpy over the chunk's bytes).

:func:`split_records` gives the same records as biopython's ``SimpleFastaParser`` (the
reference parser, used by :mod:`protperf.data.fasta`) for chunks it accepts, without a Python
loop over lines: header lines are found from the positions of ``\\n``, the header bytes are
blanked, and one ``bytes.translate`` deletes the whitespace of all sequences at once.

It only accepts chunks whose semantics are simple, and returns ``None`` for anything else so
that the caller falls back to the reference parser (which also produces the errors):

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

from dataclasses import dataclass

import numpy as np

from protperf.data.chunk import CHUNK_TABLE, RecordIds, spans_index
from protperf.data.fasta import FASTA_ENCODING

_NEWLINE, _CR, _SPACE, _GT = 10, 13, 32, 62
_WHITESPACE = b" \r\n"


@dataclass
class ChunkRecords:
    """Records of a chunk: ids (or titles) and residues, all records back to back."""

    #: ``residues`` translated with ``protperf.data.chunk.CHUNK_TABLE``, (T,) uint8
    tokens: np.ndarray
    lengths: np.ndarray  # (N,) int64, residues per record (whitespace removed)
    #: the record ids (first word of each title); ``None`` when a title has no first word
    #: that the bulk cut gives (empty, or starting with a space): then use :attr:`titles`
    ids: RecordIds | None
    #: the titles, each followed by ``\n`` (not right-stripped); kept when ``ids`` is None
    header_bytes: np.ndarray | None
    #: the chunk with its headers blanked to ``\n`` (residues are computed on demand)
    blanked: bytearray

    def residues(self) -> bytes:
        """All residues back to back, whitespace removed (latin-1 bytes)."""
        return self.blanked.translate(None, _WHITESPACE)

    @property
    def titles(self) -> list[str]:
        if self.header_bytes is None:
            raise ValueError("titles were not kept (split_records(..., keep_titles=True))")
        titles = self.header_bytes.tobytes().decode(FASTA_ENCODING).split("\n")
        titles.pop()  # after the last '\n'
        return titles

    def sequences(self) -> list[str]:
        """Residue strings, as the reference parser gives them (for tests and errors)."""
        ends = np.cumsum(self.lengths).tolist()
        starts = [0] + ends[:-1]
        text = self.residues().decode(FASTA_ENCODING)
        return [text[a:b] for a, b in zip(starts, ends, strict=True)]


def split_records(data: bytes | bytearray, keep_titles: bool = False) -> ChunkRecords | None:
    """Split a plain FASTA chunk into records, or ``None`` when the chunk needs the reference
    parser (see the module docstring).  The titles are kept when the ids cannot be cut in
    bulk, or when ``keep_titles`` is set (for tests).

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
    ids = header_bytes = None
    if word_lengths.all():
        spans = word_lengths + 1
        words = array[spans_index(title_starts, spans)]
        ends = np.cumsum(spans)
        words[ends - 1] = _NEWLINE
        ids = RecordIds(words.tobytes(), ends - spans, ends)
    if ids is None or keep_titles:  # ids None: a title empty or starting with a space
        header_bytes = array[spans_index(title_starts, header_ends - header_starts)]

    # blank the headers to '\n', then delete all whitespace: the sequences, back to back
    array[spans_index(header_starts, header_ends - header_starts)] = _NEWLINE
    region_starts = header_ends + 1
    region_ends = np.append(header_starts[1:], size)
    deleted = np.searchsorted(blanks, region_ends) - np.searchsorted(blanks, region_starts)
    lengths = (region_ends - region_starts - deleted).astype(np.int64)
    tokens = np.frombuffer(buffer.translate(CHUNK_TABLE, _WHITESPACE), dtype=np.uint8)
    return ChunkRecords(tokens, lengths, ids, header_bytes, buffer)
