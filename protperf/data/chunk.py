"""One chunk of FASTA records -> filtered, split token shards (vectorized with numpy).

The records of a chunk are tokenized together: one ``str.join``, one ``bytes.translate`` and
numpy masks, instead of Python work per residue; only the id hash is per record.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from operator import methodcaller
from pathlib import Path

import numpy as np

from protperf.data.alphabet import ENCODE_TABLE, INVALID_TOKEN
from protperf.data.config import PrepareConfig
from protperf.data.fasta import FASTA_ENCODING, FastaFormatError, locate_residue, record_id
from protperf.data.shards import SPLITS, ShardWriter, write_shard

_blake2b = hashlib.blake2b
#: ``ENCODE_TABLE`` with ``*`` mapped to ``STOP_CODE`` instead of ``INVALID_TOKEN``: a chunk is
#: translated once, and a trailing stop codon is told apart from other invalid bytes.
STOP_CODE = 254
CHUNK_TABLE = ENCODE_TABLE[: ord("*")] + bytes([STOP_CODE]) + ENCODE_TABLE[ord("*") + 1 :]
assert STOP_CODE not in ENCODE_TABLE and INVALID_TOKEN > STOP_CODE
_HASH_SCALE = float(2**64)
#: 1 for every token but those of A, C, G, T, U, N (upper or lower case), indexed by token.
_NOT_NUCLEOTIDE = np.ones(256, dtype=np.uint8)
_NOT_NUCLEOTIDE[np.frombuffer(b"ACGTUNacgtun".translate(CHUNK_TABLE), dtype=np.uint8)] = 0
_NUCLEOTIDE_PREFIX = 8


def spans_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions ``starts[i] + j`` for ``j < lengths[i]``, all spans concatenated."""
    total = int(lengths.sum())
    shift = starts - (np.cumsum(lengths) - lengths)
    return np.arange(total, dtype=np.int64) + np.repeat(shift, lengths)


def split_of(rid: str, valid_fraction: float, test_fraction: float) -> str:
    """Deterministic split of a record id: ``u = blake2b(id) / 2**64``; test if
    ``u < test_fraction``, valid if ``u < test_fraction + valid_fraction``, else train."""
    u = int.from_bytes(_blake2b(rid.encode("utf-8"), digest_size=8).digest(), "big") / _HASH_SCALE
    if u < test_fraction:
        return "test"
    if u < test_fraction + valid_fraction:
        return "valid"
    return "train"


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


def _split_codes(ids: RecordIds | list[str], cfg: PrepareConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, digests)``: 0 train, 1 valid, 2 test per id (same rule and float rounding as
    :func:`split_of`) ``(N,)`` int8, and the ids' 8-byte blake2b digests ``(N,)`` uint64
    (also used to find duplicate ids).

    The per-id work is one hashlib call chain; the comparison is vectorized.
    """
    if not len(ids):
        return np.zeros(0, dtype=np.int8), np.zeros(0, dtype=np.uint64)
    keys = (ids if isinstance(ids, RecordIds) else RecordIds.from_list(ids)).keys()
    # copying a fresh 8-byte blake2b state is twice as fast as constructing one per id
    # (keyword parsing dominates for short ids); the digests are the same
    new_hash = _blake2b(digest_size=8).copy
    digests = []
    append = digests.append
    for key in keys:
        state = new_hash()
        state.update(key)
        append(state.digest())
    digests = np.frombuffer(b"".join(digests), dtype=">u8").astype(np.uint64)
    u = digests.astype(np.float64) / _HASH_SCALE
    codes = np.zeros(len(keys), dtype=np.int8)
    codes[u < cfg.test_fraction + cfg.valid_fraction] = 1
    codes[u < cfg.test_fraction] = 2
    return codes, digests


def nucleotide_like(tokens: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: records (``tokens[starts[i]:starts[i] + lengths[i]]``, back to back in
    ``tokens`` ``(T,)`` uint8) that are not empty and hold only A, C, G, T, U or N.

    Only the first :data:`_NUCLEOTIDE_PREFIX` residues of every record are looked at in bulk
    (a protein passes that test with probability ~1e-5); the few that pass are checked whole.
    """
    index = np.flatnonzero(lengths > 0)  # the records still possibly nucleotide-like
    for j in range(_NUCLEOTIDE_PREFIX):  # residue j (the last one of shorter records)
        at = starts[index] + np.minimum(j, lengths[index] - 1)
        index = index[np.take(_NOT_NUCLEOTIDE, np.take(tokens, at)) == 0]
        if not index.size:
            break
    candidate = np.zeros(len(lengths), dtype=bool)
    candidate[index] = True
    found = index[lengths[index] > _NUCLEOTIDE_PREFIX]
    if found.size > len(lengths) // 16:  # mostly nucleotides: one pass over their residues
        flat = spans_index(starts[found], lengths[found])
        flags = _NOT_NUCLEOTIDE[tokens[flat]]
        bounds = np.concatenate(([0], np.cumsum(lengths[found])[:-1]))
        candidate[found] = np.maximum.reduceat(flags, bounds) == 0
    else:
        for i in found.tolist():
            candidate[i] = not _NOT_NUCLEOTIDE[tokens[starts[i]:starts[i] + lengths[i]]].any()
    return candidate


def span_pieces(data, starts: np.ndarray, lengths: np.ndarray) -> list[memoryview]:
    """Views ``data[starts[i]:starts[i] + lengths[i]]`` (``data``: any 1-D byte buffer), spans
    that touch merged into one view, so a run of consecutive records is one piece."""
    if not len(starts):
        return []
    ends = starts + lengths
    breaks = np.flatnonzero(starts[1:] != ends[:-1])
    run_starts = starts[np.concatenate(([0], breaks + 1))].tolist()
    run_ends = ends[np.append(breaks, len(starts) - 1)].tolist()
    return list(map(memoryview(data).__getitem__, map(slice, run_starts, run_ends)))


def _record_ids(titles: list[str]) -> list[str]:
    """First word of each title (``""`` for an empty one), like ``title.split()[0]``.

    Fast path: cut at the first space; valid when every result is non-empty and has no other
    whitespace (whitespace characters are exactly the non-printable or space ones).
    """
    ids = [t.partition(" ")[0] for t in titles]
    if all(ids) and "".join(ids).isprintable():
        return ids
    return [w[0] if w else "" for w in map(methodcaller("split", None, 1), titles)]


def build_chunk(
    titles: list[str],
    sequences: list[str],
    cfg: PrepareConfig,
    source: Path,
    start_byte: int,
    out_dir: Path,
    name: str,
    first_index: int = 0,
    writer: ShardWriter | None = None,
) -> dict:
    """Filter, split and write one chunk (with ``writer`` if given); returns
    ``{"stats": ..., "shards": ..., "digests": ...}`` (``digests``: per split, the id digests
    of the kept records in file order, for :mod:`protperf.data.duplicates`).

    ``start_byte`` is where the chunk's first record starts in the (decompressed) file, used
    only to give line numbers in errors; ``first_index`` is the number of records between
    ``start_byte`` and the chunk's first record (for a gzip stream read from byte 0).
    """
    raw_lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    raw = "".join(sequences).encode(FASTA_ENCODING)
    return build_chunk_raw(titles, raw, raw_lengths, cfg, source, start_byte, out_dir, name,
                           first_index, writer=writer)


def build_chunk_raw(
    titles: list[str] | None,
    raw: bytes | bytearray | Callable[[], bytes | bytearray],
    raw_lengths: np.ndarray,
    cfg: PrepareConfig,
    source: Path,
    start_byte: int,
    out_dir: Path,
    name: str,
    first_index: int = 0,
    ids: RecordIds | None = None,
    tokens: np.ndarray | None = None,
    writer: ShardWriter | None = None,
) -> dict:
    """:func:`build_chunk` on the residues of all records back to back (``raw``, latin-1
    bytes, whitespace removed) and their lengths ``raw_lengths`` ``(N,)`` int64.

    ``ids``, when given, must hold ``_record_ids(titles)`` (computed in bulk by the caller);
    ``titles`` are then not needed and may be ``None``.  ``tokens``, when given, is ``raw``
    translated with ``CHUNK_TABLE`` ``(T,)`` uint8; ``raw`` may then be a function returning
    it, called only to write an error message.

    Each split's shard is written from ``tokens`` and ``ids.text`` as a few runs of
    consecutive kept records (one slice each), not record by record.
    """
    n = len(raw_lengths)
    stats: Counter = Counter(read=n)
    if ids is None:
        ids = RecordIds.from_list(_record_ids(titles))
    empty_ids = np.flatnonzero(ids.ends - ids.starts == 1)
    first_empty_header = int(empty_ids[0]) if empty_ids.size else None
    if tokens is None:
        tokens = np.frombuffer(raw.translate(CHUNK_TABLE), dtype=np.uint8)
    ends = np.cumsum(raw_lengths)  # in raw coordinates (stop codons included)
    starts = ends - raw_lengths
    lengths = raw_lengths.copy()
    stop_positions = bad_positions = np.zeros(0, dtype=np.int64)
    if tokens.size and int(tokens.max()) >= STOP_CODE:  # stop codons or invalid characters
        # one trailing '*' (stop codon) per record is dropped
        last = ends[raw_lengths > 0] - 1
        stop_positions = last[tokens[last] == STOP_CODE]
        invalid = tokens >= STOP_CODE  # other stop codons are invalid characters
        invalid[stop_positions] = False
        bad_positions = np.flatnonzero(invalid)
        del invalid
        lengths[np.searchsorted(ends, stop_positions, side="right")] -= 1
    keep = lengths > 0
    stats["skip:empty"] = int(n - keep.sum())

    first_bad = None
    if bad_positions.size:
        bad_records = np.unique(np.searchsorted(ends, bad_positions, side="right"))
        first_bad = int(bad_records[0])
    errors = [k for k in (first_empty_header, first_bad if cfg.on_invalid == "error" else None)
              if k is not None]
    if errors:
        k = min(errors)
        if k == first_empty_header:
            record_id(titles[k], source, locate_residue(source, start_byte, first_index + k, -1))
        rid = ids[k]
        residue = int(bad_positions[0] - starts[k])
        if callable(raw):
            raw = raw()
        line = locate_residue(source, start_byte, first_index + k, residue)
        raise FastaFormatError(
            f"{source}: line {line}: record {rid!r}: invalid character "
            f"{chr(raw[starts[k] + residue])!r} (not an amino-acid letter); set "
            "data.on_invalid=skip to skip such records"
        )
    if bad_positions.size:
        stats["skip:invalid_characters"] = int(bad_records.size)
        keep[bad_records] = False

    too_short = keep & (lengths < cfg.min_residues)
    stats["skip:too_short"] = int(too_short.sum())
    keep &= ~too_short
    kept_lengths = lengths.copy()
    if cfg.max_residues is not None:
        too_long = keep & (lengths > cfg.max_residues)
        if cfg.long_policy == "skip":
            stats["skip:too_long"] = int(too_long.sum())
            keep &= ~too_long
        else:
            stats["truncated"] = int(too_long.sum())
            kept_lengths[too_long] = cfg.max_residues

    codes, digests = _split_codes(ids, cfg)
    if stop_positions.size:  # drop the stop codons: records are back to back again
        tokens = np.delete(tokens, stop_positions)
        starts = starts - np.searchsorted(stop_positions, starts)
    nucleotide = keep & nucleotide_like(tokens, starts, lengths)
    stats["nucleotide_like"] = count = int(nucleotide.sum())
    if count and 2 * count > int(keep.sum()) and not cfg.allow_nucleotide:
        k = int(np.flatnonzero(nucleotide)[0])
        line = locate_residue(source, start_byte, first_index + k, -1)
        raise FastaFormatError(
            f"{source}: line {line}: record {ids[k]!r} looks like a nucleotide sequence (only "
            f"A/C/G/T/U/N), like {count} of the {int(keep.sum())} records around it; "
            "expected protein FASTA (--allow-nucleotide / data.prepare.allow_nucleotide=true to "
            "prepare it anyway)")
    id_spans = ids.ends - ids.starts
    write = write_shard if writer is None else writer.write
    shards, kept_digests = {}, {}
    for code, split in ((0, "train"), (1, "valid"), (2, "test")):
        indices = np.flatnonzero(keep & (codes == code))
        kept_digests[split] = digests[indices]
        count, residues = len(indices), int(kept_lengths[indices].sum())
        stats[f"{split}:sequences"] = count
        stats[f"{split}:residues"] = residues
        stats["kept"] += count
        stats["residues"] += residues
        if not count:
            continue
        shards[split] = write(
            out_dir / split, name,
            span_pieces(tokens, starts[indices], kept_lengths[indices]),
            kept_lengths[indices],
            span_pieces(ids.text, ids.starts[indices], id_spans[indices]),
        )
    assert set(shards) <= set(SPLITS)
    return {"stats": dict(stats), "shards": shards, "digests": kept_digests}
