"""Cropping, packing, and sharding over ranks x workers."""

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from protperf.data.alphabet import ALPHABET as A
from protperf.data.batching import crop_protein
from protperf.data.config import PrepareConfig
from protperf.data.dataset import ConcatenatedDataset, ProteinDataset, shard_items
from protperf.data.preparation.pipeline import prepare
from protperf.data.shards import PreparedSplit


def test_crop_short_protein_keeps_bos_and_eos():
    residues = np.array([5, 6, 7], dtype=np.uint8)
    assert crop_protein(residues, 10, None).tolist() == [2, 5, 6, 7, 3]
    assert crop_protein(residues, 5, np.random.default_rng(0)).tolist() == [2, 5, 6, 7, 3]


def test_crop_long_protein_fixed_in_eval_random_in_training():
    residues = np.random.default_rng(5).integers(5, 25, size=100).astype(np.uint8)
    full = np.concatenate(([A.bos_id], residues, [A.eos_id]))
    assert crop_protein(residues, 10, None).tolist() == full[:10].tolist()
    starts = set()
    rng = np.random.default_rng(0)
    for _ in range(300):
        window = crop_protein(residues, 10, rng)
        assert len(window) == 10
        # a contiguous window of bos + residues + eos
        matches = [s for s in range(len(full) - 9) if np.array_equal(full[s : s + 10], window)]
        assert matches
        starts.add(matches[0])
    assert 0 in starts and len(full) - 10 in starts and len(starts) > 50


def test_shard_items_partition_exactly():
    n, world, workers = 103, 3, 2
    seen = Counter()
    for rank in range(world):
        for worker in range(workers):
            seen.update(shard_items(n, rank, world, worker, workers))
    assert seen == Counter(range(n))


def _collect(dataset_factory, world_size, num_workers):
    """All examples every (rank, worker) yields in one epoch, via real DataLoader workers."""
    out = []
    for rank in range(world_size):
        ds = dataset_factory(rank, world_size)
        loader = DataLoader(ds, batch_size=None, num_workers=num_workers)
        out.extend(loader)
    return out


@pytest.fixture(scope="module")
def small_split(tmp_path_factory):
    rng = np.random.default_rng(1)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    text = "".join(
        f">P{i}\n{''.join(rng.choice(letters, size=int(rng.integers(1, 120))))}\n"
        for i in range(157)
    )
    path = tmp_path_factory.mktemp("small") / "small.fa"
    path.write_text(text)
    out = path.parent / "prep"
    prepare(path, out, PrepareConfig(valid_fraction=0.0, test_fraction=0.0))
    return PreparedSplit(out, "train")


def _residue_multiset(split):
    return Counter(int(t) for i in range(len(split)) for t in split[i])


@pytest.mark.parametrize("train", [True, False])
def test_concatenated_windows_use_every_residue_once_across_ranks_and_workers(small_split,
                                                                              train):
    window = 64
    windows = _collect(
        lambda r, w: ConcatenatedDataset(small_split, window, train=train, seed=3, rank=r,
                                         world_size=w), world_size=2, num_workers=2)
    ds = ConcatenatedDataset(small_split, window, train=train, seed=3)
    assert len(windows) == ds.num_windows == -(-ds.total_tokens // window)
    assert all(w.shape == (window,) and w.dtype == torch.int64 for w in windows)
    tokens = torch.cat(windows)
    residues = tokens[tokens >= A.num_special]
    assert Counter(residues.tolist()) == _residue_multiset(small_split)
    assert int((tokens == A.bos_id).sum()) == len(small_split)
    assert int((tokens == A.eos_id).sum()) == len(small_split)
    assert int((tokens == A.pad_id).sum()) == ds.num_windows * window - ds.total_tokens


def test_concatenated_stream_is_the_proteins_in_order(small_split):
    ds = ConcatenatedDataset(small_split, 50, train=False)
    stream = torch.cat(list(ds)).numpy()[: ds.total_tokens]
    expected = np.concatenate(
        [np.concatenate(([A.bos_id], small_split[i], [A.eos_id])) for i in range(len(small_split))])
    assert np.array_equal(stream, expected)


def test_protein_dataset_every_protein_once_across_ranks_and_workers(small_split):
    examples = _collect(
        lambda r, w: ProteinDataset(small_split, 1000, train=True, rank=r, world_size=w),
        world_size=2, num_workers=2)
    got = Counter(tuple(e[1:-1].tolist()) for e in examples)
    expected = Counter(tuple(small_split[i].tolist()) for i in range(len(small_split)))
    assert got == expected
    sizes = [len(ProteinDataset(small_split, 1000, rank=r, world_size=2)) for r in range(2)]
    assert sum(sizes) == len(small_split) and abs(sizes[0] - sizes[1]) <= 1


def test_training_order_changes_with_epoch_eval_order_fixed(small_split):
    ds = ProteinDataset(small_split, 1000, train=True, seed=0)
    first = [e.tolist() for e in ds]
    ds.set_epoch(1)
    second = [e.tolist() for e in ds]
    assert first != second and sorted(first) == sorted(second)
    ev = ProteinDataset(small_split, 1000, train=False)
    assert [e.tolist() for e in ev] == [e.tolist() for e in ev]


def test_even_ranks_gives_equal_lengths_and_drops_fewer_than_world_size(small_split):
    world = 3
    for cls, arg in ((ProteinDataset, 1000), (ConcatenatedDataset, 64)):
        datasets = [cls(small_split, arg, train=True, rank=r, world_size=world, even_ranks=True)
                    for r in range(world)]
        sizes = [len(d) for d in datasets]
        produced = [len(list(d)) for d in datasets]
        assert sizes == produced and len(set(sizes)) == 1
        total = len(cls(small_split, arg, train=True))
        assert 0 <= total - sum(sizes) < world
