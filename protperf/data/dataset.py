"""Datasets over a prepared split: one protein per example, or packed fixed-length windows.

Both are ``IterableDataset``s that split their work across DDP ranks and DataLoader workers
themselves: items (proteins or windows) are dealt to ranks round-robin (``i % world_size ==
rank``), then a rank's items to its workers round-robin.  Every item goes to exactly one
(rank, worker) per epoch: nothing is duplicated or dropped (ranks may differ by one item).
Ranks are passed explicitly (the data module reads them from the trainer).

DDP needs the same number of batches on every rank (a rank with one batch more waits forever in
the gradient all-reduce), so training under DDP uses ``even_ranks=True``: the last
``n_items % world_size`` items of the epoch's order are left out (fewer than ``world_size``
items, a different few each epoch since the order is reshuffled).  Evaluation and single-process
training use every item.

Shuffling (training) is a permutation drawn from ``(seed, epoch)``, identical on every rank;
evaluation keeps file order, so validation is deterministic for fixed ``num_workers``.

A pass can start part-way (resuming a checkpoint): :meth:`_ShardedIterable.resume_from` tells
each worker how many of its batches are done and which worker's share it continues (see
:mod:`protperf.data.resume`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from protperf.data.alphabet import ALPHABET
from protperf.data.batching import crop_protein, protein_window
from protperf.data.resume import ResumePoint, start_of_pass
from protperf.data.shards import PreparedSplit


def shard_items(n_items: int, rank: int, world_size: int, worker_id: int, num_workers: int):
    """Positions (into an epoch's item order) that one (rank, worker) consumes.

    Rank ``r`` gets positions ``r, r + world_size, ...``; its worker ``w`` gets every
    ``num_workers``-th of those starting at the ``w``-th.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} out of range for world_size {world_size}")
    return range(rank + worker_id * world_size, n_items, world_size * num_workers)


def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class _ShardedIterable(IterableDataset):
    def __init__(self, split: PreparedSplit, train: bool, seed: int, rank: int, world_size: int,
                 even_ranks: bool = False):
        super().__init__()
        self.even_ranks = even_ranks
        self.split = split
        self.train = train
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._point, self._batch_size = start_of_pass(1), 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_from(self, point: ResumePoint, batch_size: int) -> None:
        """Start the next pass after ``point.done[w]`` batches of ``batch_size`` items of each
        worker ``w``; loader worker slot ``i`` continues worker ``point.logical_worker(i)``."""
        self._point, self._batch_size = point, batch_size

    def _positions(self, n_items: int):
        """This (rank, worker)'s positions into the epoch's item order, minus those done."""
        slot, num_workers = _worker()
        point = self._point if len(self._point.done) == num_workers else start_of_pass(num_workers)
        worker = point.logical_worker(slot)
        positions = shard_items(self._usable(n_items), self.rank, self.world_size, worker,
                                num_workers)
        return positions[point.done[worker] * self._batch_size:]

    def _usable(self, n_items: int) -> int:
        """Items used this epoch (all, or a multiple of world_size with ``even_ranks``)."""
        return n_items - n_items % self.world_size if self.even_ranks else n_items

    def _protein_order(self) -> np.ndarray:
        n = len(self.split)
        if not self.train:
            return np.arange(n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n)


class ProteinDataset(_ShardedIterable):
    """One example per protein: ``(<= max_length,)`` int64 tokens (see :func:`crop_protein`)."""

    def __init__(
        self,
        split: PreparedSplit,
        max_length: int,
        train: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        even_ranks: bool = False,
    ):
        super().__init__(split, train, seed, rank, world_size, even_ranks)
        self.max_length = max_length

    def __len__(self) -> int:
        return len(range(self.rank, self._usable(len(self.split)), self.world_size))

    def __iter__(self):
        order = self._protein_order()
        for position in self._positions(len(order)):
            index = int(order[position])
            rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
            yield torch.from_numpy(crop_protein(self.split[index], self.max_length, rng))


class ConcatenatedDataset(_ShardedIterable):
    """Proteins packed as ``bos r r r eos bos r r eos ...`` into windows of ``window`` tokens.

    Each epoch the (shuffled, in training) proteins form one stream of ``T = sum(n_i + 2)``
    tokens cut into ``ceil(T / window)`` windows, so every residue appears exactly once per
    epoch; only the last window is shorter and is padded with ``<pad>`` (less than one window
    of padding per epoch).  Yields ``(window,)`` int64.
    """

    def __init__(
        self,
        split: PreparedSplit,
        window: int,
        train: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        even_ranks: bool = False,
    ):
        super().__init__(split, train, seed, rank, world_size, even_ranks)
        self.window = window
        self.total_tokens = int((split.lengths + 2).sum())

    @property
    def num_windows(self) -> int:
        return -(-self.total_tokens // self.window)

    def __len__(self) -> int:
        return len(range(self.rank, self._usable(self.num_windows), self.world_size))

    def __iter__(self):
        order = self._protein_order()
        ends = np.cumsum(self.split.lengths[order] + 2)  # stream end of each protein
        for k in self._positions(self.num_windows):
            yield torch.from_numpy(self._window(k, order, ends))

    def _window(self, k: int, order: np.ndarray, ends: np.ndarray) -> np.ndarray:
        out = np.full(self.window, ALPHABET.pad_id, dtype=np.int64)
        pos = k * self.window  # stream position of out[0]
        stop = min(pos + self.window, self.total_tokens)
        p = int(np.searchsorted(ends, pos, side="right"))
        while pos < stop:
            protein = self.split[int(order[p])]
            begin = int(ends[p]) - (len(protein) + 2)  # stream position of its bos
            piece = protein_window(protein, pos - begin, min(stop, int(ends[p])) - begin)
            out[pos - k * self.window : pos - k * self.window + len(piece)] = piece
            pos += len(piece)
            p += 1
        return out
