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

from protperf.data.fasta import FASTA_ENCODING

_NEWLINE, _CR, _SPACE, _GT = 10, 13, 32, 62
_WHITESPACE = b" \r\n"


@dataclass
class ChunkRecords:
    """Records of a chunk: ``titles[i]`` (header line without ``>``, not right-stripped) and
    residues ``residues[offsets[i]:offsets[i] + lengths[i]]`` (whitespace removed)."""

    titles: list[str]
    residues: bytes | bytearray
    lengths: np.ndarray  # (N,) int64

    def sequences(self) -> list[str]:
        """Residue strings, as the reference parser gives them (for tests and errors)."""
        ends = np.cumsum(self.lengths).tolist()
        starts = [0] + ends[:-1]
        text = bytes(self.residues).decode(FASTA_ENCODING)
        return [text[a:b] for a, b in zip(starts, ends, strict=True)]


def _spans_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions ``starts[i] + j`` for ``j < lengths[i]``, all spans concatenated."""
    total = int(lengths.sum())
    shift = starts - (np.cumsum(lengths) - lengths)
    return np.arange(total, dtype=np.int64) + np.repeat(shift, lengths)


def split_records(data: bytes) -> ChunkRecords | None:
    """Split a plain FASTA chunk into records, or ``None`` when the chunk needs the reference
    parser (see the module docstring)."""
    if not data.startswith(b">") or not data.isascii():
        return None
    if not data.endswith(b"\n"):
        data = data + b"\n"  # the last line's missing newline changes nothing for the parser
    buffer = bytearray(data)
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
    header_index = _spans_index(header_starts + 1, header_ends - header_starts)
    titles = array[header_index].tobytes().decode(FASTA_ENCODING).split("\n")
    titles.pop()  # after the last '\n'

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
    residues = buffer.translate(None, _WHITESPACE)
    return ChunkRecords(titles=titles, residues=residues, lengths=lengths)
