"""Stop signals and resuming through the real entry point, in subprocesses.

- SIGTERM to a local training process: it saves ``last.ckpt`` after the current batch and
  exits 0; ``ckpt_path=last`` continues from that step.
- A requeued SLURM job (``SLURM_RESTART_COUNT``) resumes by itself, and the previous
  handler of the signal (submitit's requeue) is called after the checkpoint is written.
- 2 DDP ranks (gloo): stop on one rank, resume, bitwise the weights of the uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from protperf.checkpoint.module import read_checkpoint
from tests.model.test_exact_resume import _logged
from tests.scale.conftest import REPO, TINY, run_script

SLOW_STEPS = [*TINY, "trainer.max_steps=400", "trainer.val_check_interval=400",
              "callbacks.last_checkpoint.every_n_train_steps=1000",
              "+callbacks.batch_record={_target_:protperf.runtime.batch_record.BatchRecorder,"
              "dirpath:batch_records}"]


def _start(args: list[str], cwd, env: dict | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                "WANDB_MODE": "offline", **(env or {})}
    return subprocess.Popen([sys.executable, str(REPO / "scripts" / "train.py"), *args],
                            cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_batches(records, process: subprocess.Popen, batches: int, timeout: float = 240):
    """Wait until the BatchRecorder file ``records`` lists ``batches`` training batches."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        if records.is_file() and records.read_text().count('"kind": "batch"') >= batches:
            return
        time.sleep(0.2)
    process.kill()
    raise AssertionError("training did not reach the step in time")


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly_then_last_resumes(tmp_path):
    run_dir = tmp_path / "run"
    process = _start([*SLOW_STEPS, "hydra.run.dir=run"], tmp_path)
    _wait_for_batches(tmp_path / "batch_records" / "rank0.jsonl", process, 3)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    assert "stopped by SIGTERM at step" in stdout
    saved = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    step = saved["global_step"]
    assert 3 <= step < 400
    assert not list((run_dir / "checkpoints").glob(".*tmp*"))  # no partial file left

    resumed = run_script("train.py", [*SLOW_STEPS, f"trainer.max_steps={step + 2}",
                                      "hydra.run.dir=run", "ckpt_path=last"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"ckpt_path=last: resuming from {run_dir / 'checkpoints' / 'last.ckpt'}" \
        in resumed.stdout + resumed.stderr
    assert f"step={step + 2} " in resumed.stdout
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == step + 2


# Stands in for submitit's SIGUSR2 handler (requeue, then exit): records the call, exits 3.
SUBMITIT_STAND_IN = """
import signal, sys
from pathlib import Path
def requeue(signum, frame):
    Path("requeued").write_text(str(signum))
    sys.exit(3)
signal.signal(signal.SIGUSR2, requeue)
sys.argv = ["train.py", *sys.argv[1:]]
from protperf.app.train import main
main()
"""


@pytest.mark.slow
def test_slurm_signal_hands_over_to_the_requeue_and_the_requeued_job_resumes(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    process = subprocess.Popen([sys.executable, "-c", SUBMITIT_STAND_IN, *SLOW_STEPS,
                                "hydra.run.dir=run"], cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_batches(tmp_path / "batch_records" / "rank0.jsonl", process, 3)
    process.send_signal(signal.SIGUSR2)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 3, stderr[-3000:]  # the stand-in ran, after the save
    assert (tmp_path / "requeued").read_text() == str(int(signal.SIGUSR2))
    assert "stopped by SIGUSR2 at step" in stdout
    step = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"]

    requeued = run_script("train.py", [*SLOW_STEPS, f"trainer.max_steps={step + 1}",
                                       "hydra.run.dir=run"], cwd=tmp_path,
                          env={"SLURM_RESTART_COUNT": "1"})
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert f"step={step + 1} " in requeued.stdout
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == step + 1


@pytest.mark.slow
def test_ddp_stop_on_one_rank_and_resume_equals_one_run(tmp_path):
    """2 gloo ranks x 1 worker; rank 1 gets the signal, both stop after the same batch."""
    stopper = ("+callbacks.stopper={_target_:tests.model.test_exact_resume.SignalAtStep,"
               "step:3,rank:1}")
    common = [*TINY, "trainer=ddp", "task=mlm", "model.dropout=0.1", "data.num_workers=1",
              "trainer.max_steps=6", "trainer.val_check_interval=6",
              "callbacks.last_checkpoint.every_n_train_steps=100"]
    whole = run_script("train.py", [*common, "hydra.run.dir=whole"], cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    stopped = run_script("train.py", [*common, stopper, "hydra.run.dir=split"], cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert "stopped by" in stopped.stdout and "at step 3" in stopped.stdout
    assert read_checkpoint(tmp_path / "split/checkpoints/last.ckpt")["global_step"] == 3
    resumed = run_script("train.py", [*common, "hydra.run.dir=split", "ckpt_path=last"],
                         cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = read_checkpoint(tmp_path / "whole/checkpoints/last.ckpt")
    b = read_checkpoint(tmp_path / "split/checkpoints/last.ckpt")
    assert a["global_step"] == b["global_step"] == 6
    for name, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][name]), name
    # the same metrics: per-step train loss of rank 0, and the epoch mean over both ranks
    # (running metric states of each rank are in the checkpoint)
    for key in ("train/loss", "train/loss_epoch", "val/loss"):
        whole_log, split_log = (_logged(tmp_path / name, key) for name in ("whole", "split"))
        assert len(whole_log) >= 1, key
        pd.testing.assert_series_equal(whole_log, split_log.loc[whole_log.index], rtol=0, atol=0)
