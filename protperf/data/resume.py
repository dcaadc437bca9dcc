"""Where a training pass stopped, in terms each DataLoader worker can act on.

A DataLoader over an ``IterableDataset`` with ``W`` workers hands out batches round-robin:
worker 0's first batch, worker 1's first batch, ..., worker 0's second batch, ..., skipping a
worker once it has no batches left.  Batch ``r`` of worker ``w`` therefore has the key
``r * W + w`` and the pass yields its batches in key order.

After ``k`` batches a resumed pass must yield exactly the rest, in the same order.
:func:`resume_point` gives, per worker, how many of its batches are done and the *rotation*
``s``: the resumed loader's worker slot ``i`` plays the role of worker ``(i + s) % W``, so that
its round-robin continues where the interrupted one stopped (the keys of the remaining batches
shift by a constant, hence keep their order).

:class:`SeededCollator` draws each batch's random numbers (MLM masks) from a generator seeded
by ``(seed, epoch, worker, batch index of that worker)``: the same batch gets the same masks
whether the pass ran through or was resumed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info


@dataclass(frozen=True)
class ResumePoint:
    """done: batches already consumed per (logical) worker; rotation: logical worker of slot 0."""

    done: tuple[int, ...]
    rotation: int = 0

    def logical_worker(self, slot: int) -> int:
        return (slot + self.rotation) % len(self.done)


def start_of_pass(num_workers: int) -> ResumePoint:
    return ResumePoint(done=(0,) * max(num_workers, 1))


def resume_point(batches_per_worker: list[int], consumed: int) -> ResumePoint:
    """Split ``consumed`` batches of a round-robin pass over workers with
    ``batches_per_worker[w]`` batches each (see the module docstring).

    ``consumed`` at or beyond the pass length means the whole pass is done.
    """
    counts = np.asarray(batches_per_worker, dtype=np.int64)
    workers = len(counts)
    if consumed <= 0:
        return start_of_pass(workers)
    if consumed >= counts.sum():
        return ResumePoint(done=tuple(int(n) for n in counts))

    def done_before(key: int) -> np.ndarray:  # batches of each worker with a key < ``key``
        ceil = -(-(key - np.arange(workers)) // workers)
        return np.clip(ceil, 0, counts)

    low, high = 0, int(counts.max()) * workers  # smallest key with ``consumed`` batches before
    while low < high:
        middle = (low + high) // 2
        if done_before(middle).sum() >= consumed:
            high = middle
        else:
            low = middle + 1
    return ResumePoint(done=tuple(int(n) for n in done_before(low)), rotation=low % workers)


def batch_seed(seed: int, epoch: int, worker: int, index: int) -> int:
    """A 63-bit seed for one batch, independent for every ``(seed, epoch, worker, index)``."""
    state = np.random.SeedSequence([seed, epoch, worker, index]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


@dataclass
class SeededCollator:
    """Wraps a collator that draws random numbers (MLM: it has a ``reseed(seed)`` method) and
    reseeds it before each batch from :func:`batch_seed`; collators without one pass through.

    The data loader sets ``epoch`` and ``point`` before each pass (:meth:`start_pass`); the
    batch counter is per process, so each worker counts its own batches.
    """

    collate: Any
    seed: int = 0
    epoch: int = 0
    point: ResumePoint = field(default_factory=lambda: start_of_pass(1))
    _calls: int = 0
    _pid: int = field(default_factory=os.getpid)

    def start_pass(self, epoch: int, point: ResumePoint) -> None:
        self.epoch, self.point, self._calls, self._pid = epoch, point, 0, os.getpid()

    def __call__(self, examples: list[torch.Tensor]) -> Any:
        reseed = getattr(self.collate, "reseed", None)
        if reseed is not None:
            if self._pid != os.getpid():  # first batch in a freshly started worker
                self._calls, self._pid = 0, os.getpid()
            info = get_worker_info()
            worker = self.point.logical_worker(0 if info is None else info.id)
            index = self.point.done[worker] + self._calls
            reseed(batch_seed(self.seed, self.epoch, worker, index))
        self._calls += 1
        return self.collate(examples)
