"""What a person sees when training or evaluation fails for a reason of theirs: one line on
stderr naming the file or key, exit status 2, no traceback (HYDRA_FULL_ERROR unset)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest
import torch

from tests.model.conftest import REPO, TINY


def _run(args: list[str], cwd, code: str | None = None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", WANDB_MODE="offline")
    command = [sys.executable, str(REPO / "scripts" / args[0]), *args[1:]]
    if code is not None:
        command = [sys.executable, "-c", code, *args[1:]]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def _error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def test_missing_checkpoint_to_resume(tmp_path):
    result = _run(["train.py", *TINY, "hydra.run.dir=run", "ckpt_path=gone.ckpt"], tmp_path)
    assert _error_line(result) == "error: ckpt_path=gone.ckpt: no such checkpoint file"


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "cut.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "hyper_parameters": {}}, path)
    path.write_bytes(path.read_bytes()[:300])
    result = _run(["train.py", *TINY, "hydra.run.dir=run", f"ckpt_path={path}"], tmp_path)
    line = _error_line(result)
    assert line.startswith(f"error: checkpoint {path} is truncated or corrupt (")


def test_checkpoint_with_pickled_code(tmp_path):
    path = tmp_path / "code.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "args": argparse.Namespace(a=1)}, path)
    expected = (f"error: checkpoint {path} holds pickled Python code, which safe loading "
                "(weights_only=True) refuses: it refers to argparse.Namespace; only load "
                "checkpoints written by protperf, or re-save the trusted file's plain tensors")
    train = _run(["train.py", *TINY, "hydra.run.dir=run", f"ckpt_path={path}"], tmp_path)
    assert _error_line(train) == expected
    evaluate = _run(["evaluate.py", f"checkpoints=[{path}]", "hydra.run.dir=eval"], tmp_path)
    assert _error_line(evaluate) == expected


def test_bad_config_value(tmp_path):
    result = _run(["train.py", *TINY, "hydra.run.dir=run", "optim.lr=-1"], tmp_path)
    assert _error_line(result) == "error: optim.lr=-1.0 must be positive"


def test_fresh_run_into_a_finished_run_directory(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"x")
    result = _run(["train.py", *TINY, "hydra.run.dir=run"], tmp_path)
    assert _error_line(result) == (
        f"error: output directory {tmp_path / 'run'} already holds a run (checkpoints): "
        "resume it with ckpt_path=last, or choose another hydra.run.dir")


# Runs training with the checkpoint writer failing as on a full disk.
DISK_FULL = """
import errno, sys, torch
def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")
torch.save = full
sys.argv = ["train.py", *sys.argv[1:]]
from protperf.app.train import main
main()
"""


@pytest.mark.slow
def test_disk_full_while_saving_a_checkpoint(tmp_path):
    result = _run(["train.py", *TINY, "hydra.run.dir=run"], tmp_path, code=DISK_FULL)
    line = _error_line(result)
    assert line.startswith(f"error: cannot write checkpoint {tmp_path / 'run' / 'checkpoints'}/")
    assert line.endswith(": no space left on the device (free some space, or set a checkpoint "
                         "dirpath on another disk)")
    assert not list((tmp_path / "run" / "checkpoints").glob(".*"))  # no partial file left
