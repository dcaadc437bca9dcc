"""A run stopped mid-epoch by a signal and resumed equals the uninterrupted run, bitwise.

The stop goes through the real path: a SIGUSR1 to this process during batch N makes
``ResumeCheckpoint`` save ``last.ckpt`` after that batch and stop; ``ckpt_path=last`` in the
same run directory continues to 2N.  Dropout is on and the epoch (4 batches) ends after the
resume, so data position, MLM masks, dropout, epoch change and running metrics all count.
"""

from __future__ import annotations

import os
import signal

import lightning.pytorch as pl
import pandas as pd
import pytest
import torch

from protperf.checkpoint.module import read_checkpoint
from protperf.training import train
from tests.model.conftest import compose_train

STOP_STEP, TOTAL_STEPS = 3, 6


class SignalAtStep(pl.Callback):
    """Sends ``SIGUSR1`` to this process (on global rank ``rank`` only) at the start of the
    batch after ``step - 1`` steps."""

    def __init__(self, step: int, rank: int = 0) -> None:
        self.step = step
        self.rank = rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step - 1 and trainer.global_rank == self.rank:
            os.kill(os.getpid(), signal.SIGUSR1)


def _run(tmp_path, name: str, overrides: list[str]) -> dict:
    common = ["model.dropout=0.1", "trainer.limit_train_batches=4",
              f"trainer.max_steps={TOTAL_STEPS}",
              "callbacks.last_checkpoint.every_n_train_steps=100",
              "trainer.val_check_interval=4"]
    return train(compose_train([*common, *overrides], output_dir=tmp_path / name))


def _logged(run_dir, key: str) -> pd.Series:
    """``key`` by step; the last value where a step was logged twice (the stopped run's
    epoch-end metrics at the stop are replaced by the resumed run's)."""
    metrics = pd.read_csv(run_dir / "csv" / "metrics.csv")
    rows = metrics.dropna(subset=[key]).drop_duplicates("step", keep="last")
    return rows.set_index("step")[key]


def _assert_stop_and_resume_equals_one_run(tmp_path, task: str, extra: list[str]) -> None:
    overrides = [f"task={task}", *extra]
    _run(tmp_path, "whole", overrides)
    stopper = f"+callbacks.stopper={{_target_:{__name__}.SignalAtStep,step:{STOP_STEP}}}"
    stopped = _run(tmp_path, "split", [*overrides, stopper])
    assert stopped["stopped_by"] == "SIGUSR1" and stopped["step"] == STOP_STEP
    saved = read_checkpoint(tmp_path / "split" / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == STOP_STEP
    loader_state = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert (loader_state["epoch"], loader_state["batches"]) == (0, STOP_STEP)

    resumed = _run(tmp_path, "split", [*overrides, "ckpt_path=last"])
    assert resumed["step"] == TOTAL_STEPS
    whole = read_checkpoint(tmp_path / "whole" / "checkpoints" / "last.ckpt")["state_dict"]
    split = read_checkpoint(tmp_path / "split" / "checkpoints" / "last.ckpt")["state_dict"]
    assert whole.keys() == split.keys()
    for name in whole:
        assert torch.equal(whole[name], split[name]), name
    # the same per-step losses (exactly) and epoch means (the first epoch spans the stop)
    for key in ("train/loss", "train/loss_epoch", "val/loss"):
        whole_log, split_log = _logged(tmp_path / "whole", key), _logged(tmp_path / "split", key)
        assert len(whole_log) >= 2, key
        pd.testing.assert_series_equal(whole_log, split_log.loc[whole_log.index], rtol=0, atol=0)


@pytest.mark.parametrize("task", ["mlm", "clm"])
def test_stop_and_resume_equals_one_run_without_workers(tmp_path, task, recwarn):
    _assert_stop_and_resume_equals_one_run(tmp_path, task, ["data.num_workers=0"])
    assert not [w for w in recwarn if "not resumable" in str(w.message)]


@pytest.mark.slow
@pytest.mark.parametrize("concatenate", [False, True])
def test_stop_and_resume_equals_one_run_with_two_workers(tmp_path, concatenate):
    extra = ["data.num_workers=2", "data.batch_size=3"]
    if concatenate:
        extra += ["data.concatenate=true", "data.window=48", "model.max_position=64"]
    _assert_stop_and_resume_equals_one_run(tmp_path, "mlm", extra)
