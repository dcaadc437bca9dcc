"""Duplicate record ids across a whole preparation, at UniRef scale.

Each kept record is represented by the 8-byte blake2b digest of its id (the one the split rule
computes anyway), so ids cost 8 bytes each in the parent process: about 0.5 GB for UniRef50's
65 M ids.  The digests seen so far are a few sorted numpy runs, merged when two have about the
same size (a log-structured merge), so adding N ids costs O(N log N) in all.

Two different ids share a digest with probability about ``n**2 / 2**65`` (1e-4 for 65 M ids):
such a pair would be counted as one duplicate.  Records with the same id always fall in the
same split (the split depends on the id only), so duplicates are found per split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from protperf.data.preparation.writer import write_shard


class SeenDigests:
    """A growing set of uint64 digests."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []  # sorted, unique, sizes decreasing

    def __len__(self) -> int:  # the runs are disjoint
        return sum(len(run) for run in self._runs)

    def contains_sorted(self, ordered: np.ndarray) -> np.ndarray:
        """``(N,)`` bool: which of ``ordered`` ``(N,)`` uint64 (sorted: searchsorted is then
        cache-friendly, 8x faster than on random queries) were added before."""
        found = np.zeros(len(ordered), dtype=bool)
        for run in self._runs:
            at = np.searchsorted(run, ordered)
            np.minimum(at, len(run) - 1, out=at)
            found |= run[at] == ordered
        return found

    def add(self, digests: np.ndarray) -> None:
        """Add ``digests`` ``(N,)`` uint64, none of which was added before."""
        if not len(digests):
            return
        run = np.sort(digests)
        while self._runs and len(self._runs[-1]) <= 2 * len(run):
            run = np.sort(np.concatenate((self._runs.pop(), run)))  # disjoint: no repeats
        self._runs.append(run)


def duplicate_mask(digests: np.ndarray, seen: SeenDigests) -> np.ndarray:
    """``(N,)`` bool: records (in file order) whose digest is in ``seen`` or occurs earlier
    in ``digests`` ``(N,)`` uint64; ``seen`` then holds ``digests`` too."""
    order = np.argsort(digests)  # not stable (a stable sort of uint64 is 15x slower)
    ordered = digests[order]
    known = seen.contains_sorted(ordered)
    duplicate = np.zeros(len(digests), dtype=bool)
    if known.any():  # rare: skip the scatter otherwise
        duplicate[order] = known
    group = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    if len(group) < len(ordered):  # repeats within the chunk: all but the first in file order
        first = np.minimum.reduceat(order, group)
        repeated = np.ones(len(digests), dtype=bool)
        repeated[first] = False
        duplicate |= repeated
    seen.add(ordered[group][~known[group]])  # new ids only: the runs stay disjoint
    return duplicate


def drop_records(split_dir: Path, entry: dict, drop: np.ndarray) -> dict:
    """Write shard ``entry`` of ``split_dir`` again without the records where ``drop``
    ``(N,)`` bool is set; returns the new entry (rare: only shards with duplicate ids)."""
    base = split_dir / entry["name"]
    tokens = np.load(f"{base}.tokens.npy")
    offsets = np.load(f"{base}.offsets.npy")
    ids = Path(f"{base}.ids.txt").read_bytes().split(b"\n")[:-1]
    keep = np.flatnonzero(~drop)
    lengths = np.diff(offsets)[keep]
    pieces = [tokens[offsets[i]:offsets[i + 1]] for i in keep.tolist()]
    return write_shard(split_dir, entry["name"], pieces or [b""], lengths,
                       [ids[i] + b"\n" for i in keep.tolist()])
