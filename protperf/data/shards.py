"""On-disk format of a prepared dataset, and memory-mapped access to it.

A prepared directory holds ``manifest.json`` and one folder per split; a shard ``NNNNN`` of a
split is three files::

    train/NNNNN.tokens.npy    (T,) uint8   residue token ids of all proteins, back to back
    train/NNNNN.offsets.npy   (N + 1,) int64  protein i is tokens[offsets[i]:offsets[i + 1]]
    train/NNNNN.ids.txt       N lines, the record ids

Tokens hold residues only; bos/eos are added by the datasets.  Shards are written by
:mod:`protperf.data.preparation.writer`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Version 2: the manifest lists each shard file's size and CRC-32, and the duplicate-id and
#: nucleotide counters (the shard files themselves are as in version 1).
FORMAT_VERSION = "protperf-shards-2"
SPLITS: tuple[str, ...] = ("train", "valid", "test")
MANIFEST = "manifest.json"
#: The three files of a shard, by the suffix after its name.
SHARD_FILES: tuple[str, ...] = ("tokens.npy", "offsets.npy", "ids.txt")


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"not a prepared dataset (no {MANIFEST}): {directory}; "
            "run scripts/prepare_data.py on a FASTA file first"
        )
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format {manifest.get('format')!r}, expected {FORMAT_VERSION!r}; "
            "prepare the data again"
        )
    return manifest


@dataclass
class Shard:
    tokens: np.ndarray  # (T,) uint8, memory-mapped
    offsets: np.ndarray  # (N + 1,) int64
    ids_path: Path

    def ids(self) -> list[str]:
        return self.ids_path.read_text(encoding="utf-8").splitlines()


class PreparedSplit:
    """All proteins of one split, memory-mapped: ``split[i]`` -> residue tokens ``(n_i,)``."""

    def __init__(self, directory: str | Path, split: str):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        self.directory = Path(directory)
        self.split = split
        self.manifest = read_manifest(directory)
        entries = self.manifest["splits"][split]["shards"]
        self.shards: list[Shard] = []
        for entry in entries:
            base = self.directory / split / entry["name"]
            self.shards.append(
                Shard(
                    tokens=np.load(f"{base}.tokens.npy", mmap_mode="r"),
                    offsets=np.load(f"{base}.offsets.npy"),
                    ids_path=Path(f"{base}.ids.txt"),
                )
            )
        counts = [len(s.offsets) - 1 for s in self.shards]
        #: first global protein index of each shard
        self.shard_starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self.lengths = (
            np.concatenate([np.diff(s.offsets) for s in self.shards]).astype(np.int64)
            if self.shards
            else np.zeros(0, dtype=np.int64)
        )

    def __len__(self) -> int:
        return int(self.shard_starts[-1])

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"protein index {index} out of range for {len(self)} proteins")
        shard_index = int(np.searchsorted(self.shard_starts, index, side="right")) - 1
        shard = self.shards[shard_index]
        local = index - int(self.shard_starts[shard_index])
        return shard.tokens[shard.offsets[local] : shard.offsets[local + 1]]

    def ids(self) -> list[str]:
        return [i for s in self.shards for i in s.ids()]
