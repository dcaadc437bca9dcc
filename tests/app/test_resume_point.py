"""resume_point against a brute-force simulation of the DataLoader's worker round-robin."""

from __future__ import annotations

import itertools

import pytest

from protperf.data.resume import ResumePoint, batch_seed, resume_point


def round_robin(batches_per_worker: list[int]) -> list[tuple[int, int]]:
    """(worker, batch index) in the order a DataLoader yields them: cycle over the workers,
    skipping those that have no batch left."""
    order, taken = [], [0] * len(batches_per_worker)
    while len(order) < sum(batches_per_worker):
        for worker, count in enumerate(batches_per_worker):
            if taken[worker] < count:
                order.append((worker, taken[worker]))
                taken[worker] += 1
    return order


@pytest.mark.parametrize("counts", [[5], [3, 3], [4, 3], [4, 4, 3], [2, 2, 1, 1], [6, 1, 0]])
def test_rotated_rest_of_the_pass_is_the_uninterrupted_rest(counts):
    whole = round_robin(counts)
    for consumed in range(len(whole) + 1):
        point = resume_point(counts, consumed)
        assert sum(point.done) == consumed
        # a resumed loader: slot i plays worker (i + rotation) % W, minus its done batches
        slots = [point.logical_worker(i) for i in range(len(counts))]
        rest = round_robin([counts[w] - point.done[w] for w in slots])
        resumed = [(slots[i], point.done[slots[i]] + index) for i, index in rest]
        assert resumed == whole[consumed:], (counts, consumed)


def test_start_and_end_of_a_pass():
    assert resume_point([3, 2], 0) == ResumePoint(done=(0, 0), rotation=0)
    assert resume_point([3, 2], 5).done == (3, 2)
    assert resume_point([3, 2], 99).done == (3, 2)


def test_batch_seeds_differ_and_repeat():
    seeds = {batch_seed(s, e, w, i) for s, e, w, i in itertools.product(range(2), repeat=4)}
    assert len(seeds) == 16
    assert batch_seed(1, 2, 3, 4) == batch_seed(1, 2, 3, 4)
    assert 0 <= batch_seed(7, 0, 0, 0) < 2**63
