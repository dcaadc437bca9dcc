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
every space, ``\\r`` and ``\\n`` deleted.  Titles are returned without the right-strip (only
their first word is used, which the strip does not change).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protperf.data.chunk import CHUNK_TABLE, spans_index
from protperf.data.fasta import FASTA_ENCODING

_NEWLINE, _CR, _SPACE, _GT, _DELETE = 10, 13, 32, 62, 127
_WHITESPACE = b" \r\n"


@dataclass
class ChunkRecords:
    """Records of a chunk: ``titles[i]`` (header line without ``>``, not right-stripped) and
    residues ``residues[offsets[i]:offsets[i] + lengths[i]]`` (whitespace removed)."""

    #: the titles, each followed by ``\n`` (decoded into :attr:`titles` only on demand)
    header_bytes: np.ndarray
    #: ``residues`` translated with ``protperf.data.chunk.CHUNK_TABLE``, (T,) uint8
    tokens: np.ndarray
    lengths: np.ndarray  # (N,) int64
    #: first word of each title when it could be cut at the first space (as
    #: ``protperf.data.chunk._record_ids`` does on its fast path), else ``None``
    ids: list[str] | None
    #: the chunk with its headers blanked to ``\n`` (residues are computed on demand)
    blanked: bytearray

    def residues(self) -> bytes:
        """All residues back to back, whitespace removed (latin-1 bytes)."""
        return self.blanked.translate(None, _WHITESPACE)

    @property
    def titles(self) -> list[str]:
        titles = self.header_bytes.tobytes().decode(FASTA_ENCODING).split("\n")
        titles.pop()  # after the last '\n'
        return titles

    def sequences(self) -> list[str]:
        """Residue strings, as the reference parser gives them (for tests and errors)."""
        ends = np.cumsum(self.lengths).tolist()
        starts = [0] + ends[:-1]
        text = self.residues().decode(FASTA_ENCODING)
        return [text[a:b] for a, b in zip(starts, ends, strict=True)]


def _first_words(header_bytes: np.ndarray, spans: np.ndarray) -> list[str] | None:
    """Each title cut at its first space, in bulk; ``header_bytes`` holds the titles, each
    followed by ``\n`` (``spans`` bytes each, newline included).  ``None`` unless every word
    is non-empty and printable (then it is the first whitespace-separated word)."""
    title_starts = np.cumsum(spans) - spans
    title_ends = title_starts + spans - 1
    spaces = np.flatnonzero(header_bytes == _SPACE)
    nearest = np.searchsorted(spaces, title_starts)
    first_space = np.append(spaces, header_bytes.size)[nearest]
    word_lengths = np.minimum(first_space, title_ends) - title_starts
    if not word_lengths.all():
        return None
    words = header_bytes[spans_index(title_starts, word_lengths + 1)]
    words[np.cumsum(word_lengths + 1) - 1] = _NEWLINE
    raw = words.tobytes()
    if _CR in raw or _DELETE in raw:  # the only non-printable bytes that can be here
        return None
    text = raw.decode(FASTA_ENCODING)
    ids = text.split("\n")
    ids.pop()
    return ids


def split_records(data: bytes | bytearray) -> ChunkRecords | None:
    """Split a plain FASTA chunk into records, or ``None`` when the chunk needs the reference
    parser (see the module docstring).

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
    controls = np.flatnonzero(array < _SPACE)
    control_bytes = array[controls]
    newline_at = control_bytes == _NEWLINE
    if newline_at.all():
        newlines = controls
    elif np.all(newline_at | (control_bytes == _CR)):
        newlines = controls[newline_at]
    else:
        return None  # tabs, form feeds, ...: whitespace rules differ, use the reference parser
    line_starts = newlines[:-1] + 1
    header_starts = np.concatenate(([0], line_starts[array[line_starts] == _GT]))
    header_ends = newlines[np.searchsorted(newlines, header_starts)]  # the header's '\n'

    # titles: the header lines with their '\n' (after the '>'), gathered and split in one go
    header_index = spans_index(header_starts + 1, header_ends - header_starts)
    header_bytes = array[header_index]
    ids = _first_words(header_bytes, header_ends - header_starts)

    # blank the headers to '\n', then delete all whitespace: the sequences, back to back
    array[header_index] = _NEWLINE
    array[header_starts] = _NEWLINE
    region_starts = header_ends + 1
    region_ends = np.append(header_starts[1:], size)
    deleted = np.searchsorted(newlines, region_ends) - np.searchsorted(newlines, region_starts)
    if _SPACE in buffer or _CR in buffer:
        others = np.flatnonzero((array == _SPACE) | (array == _CR))
        deleted += np.searchsorted(others, region_ends) - np.searchsorted(others, region_starts)
    lengths = (region_ends - region_starts - deleted).astype(np.int64)
    tokens = np.frombuffer(buffer.translate(CHUNK_TABLE, _WHITESPACE), dtype=np.uint8)
    return ChunkRecords(header_bytes, tokens, lengths, ids, buffer)
