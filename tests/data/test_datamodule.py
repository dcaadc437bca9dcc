"""The data module: prepare on first use, cache, batch contract, deterministic validation."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from protperf.conf import CONF_DIR
from protperf.data.config import DataConfig, PrepareConfig
from protperf.data.datamodule import ProteinDataModule

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path, **kwargs):
    return DataConfig(cache_dir=str(tmp_path / "cache"), num_workers=0, batch_size=4, **kwargs)


@pytest.mark.parametrize("objective", ["mlm", "clm"])
@pytest.mark.parametrize("concatenate", [False, True])
def test_batches_follow_the_contract(tmp_path, objective, concatenate):
    cfg = _config(tmp_path, max_length=128, concatenate=concatenate, window=256)
    dm = ProteinDataModule(cfg, objective)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    length = 256 if concatenate else ids.shape[1]
    assert ids.shape == labels.shape == mask.shape == (4, length)
    assert ids.dtype == labels.dtype == torch.int64 and mask.dtype == torch.bool
    assert length <= (256 if concatenate else 128)
    assert ((labels == -100) | (labels >= 0)).all()
    assert not ((labels != -100) & ~mask).any()


def test_prepares_once_then_uses_the_cache(tmp_path):
    dm = ProteinDataModule(_config(tmp_path))
    dm.prepare_data()
    first = dm.prepared_dir
    stamp = (first / "manifest.json").stat().st_mtime_ns
    dm2 = ProteinDataModule(_config(tmp_path))
    dm2.setup()
    assert dm2.prepared_dir == first
    assert (first / "manifest.json").stat().st_mtime_ns == stamp
    # other settings -> another prepared directory
    dm3 = ProteinDataModule(_config(tmp_path, prepare=PrepareConfig(valid_fraction=0.1)))
    dm3.setup()
    assert dm3.prepared_dir != first
    # a prepared directory can be given as path directly
    dm4 = ProteinDataModule(_config(tmp_path, path=str(first)))
    dm4.setup()
    assert len(dm4.splits["valid"]) == len(dm2.splits["valid"])


def test_validation_is_deterministic_across_passes_and_workers(tmp_path):
    def val_batches(num_workers):
        cfg = _config(tmp_path)
        cfg.num_workers = num_workers
        dm = ProteinDataModule(cfg, "mlm")
        dm.setup()
        loader = dm.val_dataloader()
        return [list(loader), list(loader)]

    first, second = val_batches(0)
    assert len(first) > 0
    for a, b in zip(first, second, strict=False):
        assert all(torch.equal(a[k], b[k]) for k in a)
    w1, w2 = val_batches(2)
    flatten = lambda batches: sorted(  # noqa: E731
        tuple(row.tolist()) for b in batches for row in b["attention_mask"].sum(1, keepdim=True))
    assert flatten(w1) == flatten(first)
    for a, b in zip(w1, w2, strict=False):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_objective_and_config_key():
    with pytest.raises(ValueError, match="unknown objective 'gpt'"):
        ProteinDataModule(DataConfig(), "gpt")
    with pytest.raises(ValueError, match="data.max_length must be >= 3"):
        ProteinDataModule(DataConfig(max_length=2))


@pytest.mark.parametrize("name", ["sample", "uniref50", "uniref50_concat"])
def test_data_yaml_composes_into_a_valid_dataconfig(name):
    with initialize_config_dir(str(CONF_DIR / "data"), version_base="1.3"):
        cfg = compose(name)
    merged = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DataConfig), cfg))
    merged.validate()
    if name == "sample":
        assert merged == DataConfig()


@pytest.mark.parametrize("concatenate", [False, True])
def test_simulated_ddp_ranks_get_equal_train_steps_and_all_val_items(tmp_path, concatenate):
    cfg = _config(tmp_path, concatenate=concatenate, window=512)
    modules = [ProteinDataModule(cfg, "clm", rank=r, world_size=2) for r in range(2)]
    for dm in modules:
        dm.setup()
    train_steps = [len(list(dm.train_dataloader())) for dm in modules]
    assert train_steps[0] == train_steps[1] > 0
    # validation: every real token of the split exactly once over both ranks
    seen = sum(int(b["attention_mask"].sum()) for dm in modules for b in dm.val_dataloader())
    lengths = modules[0].splits["valid"].lengths + 2
    expected = lengths.sum() if concatenate else np.minimum(lengths, cfg.max_length).sum()
    assert seen == int(expected)


@pytest.mark.parametrize("cross", [True, False])
def test_segment_ids_only_without_cross_protein_attention(tmp_path, cross):
    cfg = _config(tmp_path, concatenate=True, window=512, cross_protein_attention=cross)
    dm = ProteinDataModule(cfg, "mlm")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert ("segment_ids" in batch) is not cross
    if not cross:  # a new id at every bos of the window (masking never touches bos)
        from protperf.data.alphabet import ALPHABET

        is_bos = batch["input_ids"] == ALPHABET.bos_id
        ids = batch["segment_ids"]
        assert int(ids.max()) > 0
        assert ((ids[:, 1:] - ids[:, :-1]) == is_bos[:, 1:].long()).all()
