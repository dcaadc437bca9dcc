"""One chunk of FASTA records -> filtered, split token shards (vectorized with numpy).

The records of a chunk are tokenized together: one ``str.join``, one ``bytes.translate`` and
numpy masks, instead of Python work per residue; only the id hash is per record.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from functools import partial
from operator import methodcaller
from pathlib import Path

import numpy as np

from protperf.data.alphabet import ENCODE_TABLE, INVALID_TOKEN
from protperf.data.config import PrepareConfig
from protperf.data.fasta import FASTA_ENCODING, FastaFormatError, locate_residue, record_id
from protperf.data.shards import SPLITS, write_shard

_blake2b = hashlib.blake2b
_HASH_SCALE = float(2**64)


def split_of(rid: str, valid_fraction: float, test_fraction: float) -> str:
    """Deterministic split of a record id: ``u = blake2b(id) / 2**64``; test if
    ``u < test_fraction``, valid if ``u < test_fraction + valid_fraction``, else train."""
    u = int.from_bytes(_blake2b(rid.encode("utf-8"), digest_size=8).digest(), "big") / _HASH_SCALE
    if u < test_fraction:
        return "test"
    if u < test_fraction + valid_fraction:
        return "valid"
    return "train"


def _split_codes(ids: list[str], cfg: PrepareConfig) -> np.ndarray:
    """0 train, 1 valid, 2 test per id (same rule and float rounding as :func:`split_of`).

    The per-id work stays in C (``map`` over hashlib); the comparison is vectorized.
    """
    if not ids:
        return np.zeros(0, dtype=np.int8)
    raw = "\n".join(ids).encode("utf-8").split(b"\n")
    digests = map(methodcaller("digest"), map(partial(_blake2b, digest_size=8), raw))
    u = np.frombuffer(b"".join(digests), dtype=">u8").astype(np.float64) / _HASH_SCALE
    codes = np.zeros(len(ids), dtype=np.int8)
    codes[u < cfg.test_fraction + cfg.valid_fraction] = 1
    codes[u < cfg.test_fraction] = 2
    return codes


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
) -> dict:
    """Filter, split and write one chunk; returns ``{"stats": ..., "shards": ...}``.

    ``start_byte`` is where the chunk's first record starts in the (decompressed) file, used
    only to give line numbers in errors; ``first_index`` is the number of records between
    ``start_byte`` and the chunk's first record (for a gzip stream read from byte 0).
    """
    n = len(titles)
    stats: Counter = Counter(read=n)
    ids = _record_ids(titles)
    first_empty_header = None
    if not all(ids):
        first_empty_header = ids.index("")
    raw_lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=n)
    raw = "".join(sequences).encode(FASTA_ENCODING)
    tokens = np.frombuffer(raw.translate(ENCODE_TABLE), dtype=np.uint8)
    ends = np.cumsum(raw_lengths)  # in raw coordinates (stop codons included)
    # one trailing '*' (stop codon) per record is dropped
    last = ends[raw_lengths > 0] - 1
    stop_positions = last[np.frombuffer(raw, dtype=np.uint8)[last] == ord("*")]
    del raw
    invalid = tokens == INVALID_TOKEN
    invalid[stop_positions] = False
    lengths = raw_lengths.copy()
    lengths[np.searchsorted(ends, stop_positions, side="right")] -= 1
    keep = lengths > 0
    stats["skip:empty"] = int(n - keep.sum())

    bad_positions = np.flatnonzero(invalid)
    del invalid
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
        residue = int(bad_positions[0] - (ends[k] - raw_lengths[k]))
        line = locate_residue(source, start_byte, first_index + k, residue)
        raise FastaFormatError(
            f"{source}: line {line}: record {rid!r}: invalid character "
            f"{sequences[k][residue]!r} (not an amino-acid letter); set "
            "data.on_invalid=skip to skip such records"
        )
    if bad_positions.size:
        stats["skip:invalid_characters"] = int(bad_records.size)
        keep[bad_records] = False

    too_short = keep & (lengths < cfg.min_residues)
    stats["skip:too_short"] = int(too_short.sum())
    keep &= ~too_short
    kept_lengths = lengths.copy()
    truncated = np.zeros(n, dtype=bool)
    if cfg.max_residues is not None:
        too_long = keep & (lengths > cfg.max_residues)
        if cfg.long_policy == "skip":
            stats["skip:too_long"] = int(too_long.sum())
            keep &= ~too_long
        else:
            truncated = too_long
            stats["truncated"] = int(too_long.sum())
            kept_lengths[too_long] = cfg.max_residues

    codes = _split_codes(ids, cfg)
    shards = {}
    for code, split in ((0, "train"), (1, "valid"), (2, "test")):
        selected = keep & (codes == code)
        indices = np.flatnonzero(selected)
        count, residues = len(indices), int(kept_lengths[indices].sum())
        stats[f"{split}:sequences"] = count
        stats[f"{split}:residues"] = residues
        stats["kept"] += count
        stats["residues"] += residues
        if not count:
            continue
        if truncated[indices].any():  # rare: cut record by record
            starts = ends - raw_lengths
            data = b"".join(
                tokens[starts[i] : starts[i] + kept_lengths[i]].tobytes() for i in indices
            )
        else:
            token_mask = np.repeat(selected, raw_lengths)
            token_mask[stop_positions] = False
            data = tokens[token_mask].tobytes()
        shards[split] = write_shard(
            out_dir / split, name, data, kept_lengths[indices].tolist(), [ids[i] for i in indices]
        )
    assert set(shards) <= set(SPLITS)
    return {"stats": dict(stats), "shards": shards}
