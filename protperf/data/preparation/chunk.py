"""One chunk of FASTA text -> filtered, split token shards (vectorized with numpy).

A :class:`ChunkJob` holds what every chunk of one preparation shares (settings, input, output
directory); :meth:`ChunkJob.run` parses a chunk (:func:`~.records.parse_chunk`), filters its
records (:func:`strip_stop_codons`, :func:`length_filter`, :func:`nucleotide_like`), splits
them by id (:mod:`.splits`) and writes one shard per split (:func:`write_splits`).  The records
of a chunk are handled together: one ``bytes.translate`` and numpy masks, instead of Python work
per residue; only the id hash is per record.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protperf.data.config import PrepareConfig
from protperf.data.fasta import FastaFormatError, locate_residue, record_id
from protperf.data.preparation.records import (
    CHUNK_TABLE,
    STOP_CODE,
    ChunkRecords,
    RecordIds,
    parse_chunk,
    spans_index,
)
from protperf.data.preparation.splits import split_codes
from protperf.data.preparation.writer import ShardWriter, write_shard
from protperf.data.shards import SPLITS

#: 1 for every token but those of A, C, G, T, U, N (upper or lower case), indexed by token.
_NOT_NUCLEOTIDE = np.ones(256, dtype=np.uint8)
_NOT_NUCLEOTIDE[np.frombuffer(b"ACGTUNacgtun".translate(CHUNK_TABLE), dtype=np.uint8)] = 0
_NUCLEOTIDE_PREFIX = 8


@dataclass(frozen=True)
class ChunkJob:
    """The chunks of one preparation: settings ``cfg``, input ``source`` (named in errors, whose
    line numbers are found by re-reading it) and output directory ``out_dir``.  Picklable: a
    pool worker runs chunks of the same job."""

    cfg: PrepareConfig
    source: Path
    out_dir: Path

    def run(self, index: int, start: int, data: bytearray,
            writer: ShardWriter | None = None) -> dict:
        """Chunk number ``index`` (FASTA text starting at byte ``start`` of the decompressed
        file; used as a work buffer and overwritten) -> one shard ``NNNNN`` per split, written
        with ``writer`` if given.  Returns ``{"stats": ..., "shards": ..., "digests": ...}``
        (``digests``: per split, the id digests of the kept records in file order, for
        :mod:`.duplicates`)."""
        records = parse_chunk(data, self.source, start)
        stats: Counter = Counter(read=len(records.lengths))
        tokens, lengths, keep = self._residues(records, start, stats)
        kept_lengths = length_filter(keep, lengths, self.cfg, stats)
        starts = np.cumsum(lengths) - lengths
        nucleotide = keep & nucleotide_like(tokens, starts, lengths)
        stats["nucleotide_like"] = int(nucleotide.sum())
        self._check_nucleotide(records.ids, start, nucleotide, keep)
        codes, digests = split_codes(records.ids, self.cfg)
        shards, kept = write_splits(self.out_dir, f"{index:05d}", tokens, starts, kept_lengths,
                                    records.ids, np.where(keep, codes, -1), writer)
        for split, indices in kept.items():
            residues = int(kept_lengths[indices].sum())
            stats[f"{split}:sequences"] = len(indices)
            stats[f"{split}:residues"] = residues
            stats["kept"] += len(indices)
            stats["residues"] += residues
        return {"stats": dict(stats), "shards": shards,
                "digests": {split: digests[indices] for split, indices in kept.items()}}

    def _residues(self, records: ChunkRecords, start: int, stats: Counter
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(tokens, lengths, keep)``: the records back to back without their trailing stop
        codon ``(T',)`` uint8, their lengths ``(N,)`` int64, and ``(N,)`` bool, False for empty
        records and records with an invalid character (counted in ``stats``); raises for an
        empty header or, with ``on_invalid=error``, an invalid character."""
        lengths, stops, invalid = strip_stop_codons(records.tokens, records.lengths)
        keep = lengths > 0
        stats["skip:empty"] = int(len(keep) - keep.sum())
        bad_records = np.unique(np.searchsorted(np.cumsum(records.lengths), invalid,
                                                side="right"))
        self._raise_first_error(records, start, bad_records, invalid)
        if bad_records.size:
            stats["skip:invalid_characters"] = int(bad_records.size)
            keep[bad_records] = False
        tokens = np.delete(records.tokens, stops) if stops.size else records.tokens
        return tokens, lengths, keep

    def _raise_first_error(self, records: ChunkRecords, start: int, bad_records: np.ndarray,
                           invalid: np.ndarray) -> None:
        """Raise for the chunk's first empty header, or first invalid character (with
        ``on_invalid=error``), whichever comes first."""
        ids = records.ids
        empty_ids = np.flatnonzero(ids.ends - ids.starts == 1)
        first_empty = int(empty_ids[0]) if empty_ids.size else None
        first_bad = (int(bad_records[0]) if bad_records.size and self.cfg.on_invalid == "error"
                     else None)
        errors = [k for k in (first_empty, first_bad) if k is not None]
        if not errors:
            return
        k = min(errors)
        if k == first_empty:  # raises: the header has no word
            record_id(records.titles[k], self.source,
                      locate_residue(self.source, start, k, -1))
        residue = int(invalid[0] - (np.cumsum(records.lengths)[k] - records.lengths[k]))
        line = locate_residue(self.source, start, k, residue)
        character = chr(records.residues()[int(invalid[0])])
        raise FastaFormatError(
            f"{self.source}: line {line}: record {ids[k]!r}: invalid character "
            f"{character!r} (not an amino-acid letter); set data.on_invalid=skip to skip such "
            "records")

    def _check_nucleotide(self, ids: RecordIds, start: int, nucleotide: np.ndarray,
                          keep: np.ndarray) -> None:
        """A chunk whose kept records are mostly nucleotide-like is an error unless
        ``allow_nucleotide``."""
        count, kept = int(nucleotide.sum()), int(keep.sum())
        if count and 2 * count > kept and not self.cfg.allow_nucleotide:
            k = int(np.flatnonzero(nucleotide)[0])
            line = locate_residue(self.source, start, k, -1)
            raise FastaFormatError(
                f"{self.source}: line {line}: record {ids[k]!r} looks like a nucleotide "
                f"sequence (only A/C/G/T/U/N), like {count} of the {kept} records around it; "
                "expected protein FASTA (--allow-nucleotide / data.prepare.allow_nucleotide=true"
                " to prepare it anyway)")


def strip_stop_codons(tokens: np.ndarray, raw_lengths: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lengths, stops, invalid)`` of records back to back in ``tokens`` ``(T,)`` uint8
    (translated with ``CHUNK_TABLE``) with ``raw_lengths`` ``(N,)``: the residue counts without
    one trailing stop codon ``*`` per record ``(N,)`` int64, the positions of those stop codons
    and of every invalid character (other stop codons included), sorted int64."""
    lengths = raw_lengths.copy()
    none = np.zeros(0, dtype=np.int64)
    if not tokens.size or int(tokens.max()) < STOP_CODE:  # no stop codon, nothing invalid
        return lengths, none, none
    ends = np.cumsum(raw_lengths)
    last = ends[raw_lengths > 0] - 1
    stops = last[tokens[last] == STOP_CODE]
    invalid = tokens >= STOP_CODE
    invalid[stops] = False
    lengths[np.searchsorted(ends, stops, side="right")] -= 1
    return lengths, stops, np.flatnonzero(invalid)


def length_filter(keep: np.ndarray, lengths: np.ndarray, cfg: PrepareConfig,
                  stats: Counter) -> np.ndarray:
    """Apply ``min_residues`` / ``max_residues`` / ``long_policy`` to ``keep`` ``(N,)`` bool (in
    place) and count the records skipped or truncated in ``stats``; returns the residue
    counts to write ``(N,)`` (``lengths`` cut to ``max_residues`` when truncating)."""
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
    return kept_lengths


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


def write_splits(out_dir: Path, name: str, tokens: np.ndarray, starts: np.ndarray,
                 lengths: np.ndarray, ids: RecordIds, destination: np.ndarray,
                 writer: ShardWriter | None = None) -> tuple[dict, dict]:
    """Write shard ``name`` of every split that gets records: record ``i`` is
    ``tokens[starts[i]:starts[i] + lengths[i]]`` and goes to split ``destination[i]`` (0 train,
    1 valid, 2 test; -1 nowhere).  Returns ``(manifest entry per split written, indices of the
    records of each split (N_split,))``.

    Each shard is written from ``tokens`` and ``ids.text`` as a few runs of consecutive records
    (one slice each), not record by record.
    """
    id_spans = ids.ends - ids.starts
    write = write_shard if writer is None else writer.write
    shards, kept = {}, {}
    for code, split in enumerate(SPLITS):
        kept[split] = indices = np.flatnonzero(destination == code)
        if len(indices):
            shards[split] = write(
                out_dir / split, name,
                span_pieces(tokens, starts[indices], lengths[indices]),
                lengths[indices],
                span_pieces(ids.text, ids.starts[indices], id_spans[indices]),
            )
    return shards, kept
