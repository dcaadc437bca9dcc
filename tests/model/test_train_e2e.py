"""End to end through the Hydra config: every model x task trains, checkpoints, resumes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from protperf.checkpoint.module import load_module, read_checkpoint
from protperf.training import train
from tests.model.conftest import TINY, compose_train, run_script


@pytest.mark.parametrize("task", ["mlm", "clm"])
@pytest.mark.parametrize("model", ["transformer", "performer_softmax", "performer_relu"])
def test_each_model_and_task_trains_and_writes_a_checkpoint(model, task, tmp_path):
    summary = train(compose_train([f"model={model}", f"task={task}"], output_dir=tmp_path))
    assert summary["step"] == 3
    assert summary["objective"] == task
    assert torch.isfinite(torch.tensor(summary["val_loss"]))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.is_file()
    checkpoint = read_checkpoint(last)  # weights_only=True
    assert checkpoint["hyper_parameters"]["model"]["name"] == model
    assert checkpoint["global_step"] == 3
    metrics = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    assert {"train/loss", "val/loss", "val/acc", "val/ppl"} <= set(metrics.columns)
    assert json.loads((tmp_path / "summary.json").read_text())["step"] == 3


def test_reloaded_checkpoint_gives_identical_logits(tmp_path):
    overrides = ["model=performer_softmax", "task=clm"]
    train(compose_train(overrides, output_dir=tmp_path))
    module = load_module(tmp_path / "checkpoints" / "last.ckpt").eval()
    again = load_module(tmp_path / "checkpoints" / "last.ckpt").eval()
    ids = torch.randint(5, 25, (2, 16))
    with torch.no_grad():
        assert torch.equal(module(ids), again(ids))
    # ... and equal to the weights of the module at the end of training
    state = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["state_dict"]
    for name, tensor in module.state_dict().items():
        assert torch.equal(tensor, state[name]), name


def test_same_seed_same_run(tmp_path):
    first = train(compose_train(["seed=3"], output_dir=tmp_path / "a"))
    second = train(compose_train(["seed=3"], output_dir=tmp_path / "b"))
    other = train(compose_train(["seed=4"], output_dir=tmp_path / "c"))
    assert first["val_loss"] == second["val_loss"]
    assert first["val_loss"] != other["val_loss"]


def test_resume_continues_at_the_saved_step(tmp_path):
    train(compose_train(["trainer.max_steps=2", "trainer.val_check_interval=2"],
                        output_dir=tmp_path / "first"))
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert read_checkpoint(ckpt)["global_step"] == 2
    resumed = train(compose_train(
        ["trainer.max_steps=4", "trainer.val_check_interval=2", f"ckpt_path={ckpt}"],
        output_dir=tmp_path / "second",
    ))
    assert resumed["step"] == 4
    steps = pd.read_csv(tmp_path / "second" / "csv" / "metrics.csv")["step"].dropna()
    assert steps.min() >= 2  # nothing logged before the resumed step


def test_train_script_default_entry_point(tmp_path):
    """The real `python scripts/train.py` (Hydra run dir, progress bar off for the log)."""
    result = run_script(
        "train.py",
        [*TINY, "model=performer_relu", "task=mlm", "hydra.run.dir=run"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[protperf] performer_relu-mlm step=3 val_loss=" in result.stdout
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()
