"""The data module's loaders under DDP: the batch count Lightning relies on is the real one."""

from __future__ import annotations

import pytest

from protperf.data.config import DataConfig
from protperf.data.datamodule import ProteinDataModule


@pytest.mark.parametrize("concatenate", [False, True])
def test_len_of_loader_is_the_number_of_batches_it_yields(tmp_path, concatenate):
    """Lightning stops an epoch after len(dataloader) batches; with several workers each one
    yields its own last partial batch, so len must count those or data is silently dropped."""
    config = DataConfig(cache_dir=str(tmp_path / "cache"), num_workers=2,
                        batch_size=7, concatenate=concatenate, window=4096, max_length=16)
    counts = []
    for rank in range(2):
        datamodule = ProteinDataModule(config, "clm", rank=rank, world_size=2)
        datamodule.setup()
        for loader in (datamodule.train_dataloader(), datamodule.val_dataloader()):
            batches = list(loader)
            assert len(loader) == len(batches)
            assert sum(len(b["input_ids"]) for b in batches) == len(loader.dataset)
        counts.append(len(datamodule.train_dataloader()))
    assert counts[0] == counts[1]  # DDP ranks run the same number of training steps


def test_recorded_mlm_rows_hash_the_unmasked_example():
    """BatchRecorder's digests: masking does not change an example's identity."""
    from types import SimpleNamespace

    import torch

    from protperf.data.collate import make_collator
    from protperf.runtime.batch_record import BatchRecorder, row_digests

    examples = [torch.tensor([2, 5, 6, 7, 8, 9, 10, 3]), torch.tensor([2, 11, 12, 3])]
    batch = make_collator("mlm", mask_prob=0.5, seed=1)(examples)
    assert (batch["labels"] >= 0).any()
    written = []
    recorder = BatchRecorder("unused")
    recorder._write = written.append
    module = SimpleNamespace(task_config=SimpleNamespace(objective="mlm"))
    trainer = SimpleNamespace(global_rank=0, current_epoch=0, global_step=0)
    recorder.on_train_batch_start(trainer, module, batch, 0)
    padded = torch.nn.utils.rnn.pad_sequence(examples, batch_first=True)
    assert written[0]["rows"] == row_digests(padded, padded != 0)
    assert written[0]["tokens"] == [8, 4]
