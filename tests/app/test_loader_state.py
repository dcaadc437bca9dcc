"""The training loader resumes a pass part-way: the rest is exactly the uninterrupted rest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protperf.data.config import DataConfig, PrepareConfig
from protperf.data.datamodule import ProteinDataModule


def _datamodule(tmp_path, num_workers: int, concatenate: bool) -> ProteinDataModule:
    rng = np.random.default_rng(0)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    fasta = tmp_path / "small.fasta"
    fasta.write_text("".join(f">P{i}\n{''.join(rng.choice(letters, int(rng.integers(5, 30))))}\n"
                             for i in range(40)))
    config = DataConfig(path=str(fasta), cache_dir=str(tmp_path / "cache"), batch_size=3,
                        max_length=16, concatenate=concatenate, window=24,
                        num_workers=num_workers, prepare=PrepareConfig(valid_fraction=0.1,
                                                                       test_fraction=0.0))
    return ProteinDataModule(config, "mlm")


@pytest.mark.parametrize("concatenate", [False, True])
@pytest.mark.parametrize("num_workers", [0, 2])
def test_resumed_pass_yields_the_rest_of_the_pass(tmp_path, num_workers, concatenate):
    datamodule = _datamodule(tmp_path, num_workers, concatenate)
    loader = datamodule.train_dataloader()
    next(iter(loader))  # epoch 0 (passes count without a trainer)
    whole = list(loader)  # epoch 1, uninterrupted
    assert len(whole) == len(loader) > 4
    for consumed in (1, 3, len(whole) - 1):
        state = {**loader.state_dict(), "epoch": 1, "batches": consumed}
        resumed = datamodule.train_dataloader()
        resumed._passes = 1  # the epoch counter a trainer would give
        resumed.load_state_dict(state)
        rest = list(resumed)
        assert len(rest) == len(whole) - consumed
        for got, expected in zip(rest, whole[consumed:], strict=True):
            for key in ("input_ids", "labels", "attention_mask"):
                assert torch.equal(got[key], expected[key]), (consumed, key)
        assert resumed.state_dict()["batches"] == len(whole)


def test_state_of_another_epoch_starts_the_pass_afresh(tmp_path):
    loader = _datamodule(tmp_path, 0, False).train_dataloader()
    first = list(loader)
    again = _datamodule(tmp_path, 0, False).train_dataloader()
    again.load_state_dict({**loader.state_dict(), "epoch": 5, "batches": 3})
    assert len(list(again)) == len(first)
