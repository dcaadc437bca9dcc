"""Fault injection through the real entry points, in subprocesses: exit codes and the one-line
messages (``HYDRA_FULL_ERROR`` unset), two processes on one run directory, signals from outside.
The in-process versions of each case are in ``test_fault_injection.py``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protperf.checkpoint.module import read_checkpoint
from protperf.runtime.run_lock import LOCK_NAME, host_name
from tests.runtime.conftest import all_finite, proteins_fasta
from tests.scale.conftest import REPO, TINY, run_script

QUIET = {"HYDRA_FULL_ERROR": None}  # the one-line errors users see
LONG = [*TINY, "trainer.max_steps=100000", "trainer.val_check_interval=100000",
        "callbacks.last_checkpoint.every_n_train_steps=100000"]  # stopped or killed by the test


def _error_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen([sys.executable, str(REPO / "scripts" / "train.py"), *args],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not (path.is_file() and path.stat().st_size > 0):
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.2)


@pytest.mark.slow
def test_nonfinite_training_exits_2_naming_the_step(tmp_path):
    result = run_script("train.py", [*TINY, "optim.lr=1e6", "trainer.gradient_clip_val=0",
                                     "optim.warmup_steps=0", "trainer.max_steps=8",
                                     "callbacks.last_checkpoint.every_n_train_steps=1",
                                     "hydra.run.dir=run"], cwd=tmp_path, env=QUIET)
    assert result.returncode == 2
    assert _error_line(result).startswith("error: training loss is nan at step 1: ")
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert read_checkpoint(last)["global_step"] == 1 and all_finite(last)


@pytest.mark.slow
def test_ckpt_path_last_is_an_error_unless_the_job_was_requeued(tmp_path):
    typo = run_script("train.py", [*TINY, "ckpt_path=last", "hydra.run.dir=typo"],
                      cwd=tmp_path, env={**QUIET, "SLURM_RESTART_COUNT": None})
    assert typo.returncode == 2
    assert _error_line(typo).startswith(
        f"error: ckpt_path=last: no checkpoint in {tmp_path / 'typo' / 'checkpoints'} ")
    requeued = run_script("train.py", [*TINY, "ckpt_path=last", "hydra.run.dir=requeued"],
                          cwd=tmp_path, env={"SLURM_RESTART_COUNT": "1"})
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert "step=3 " in requeued.stdout
    fresh = run_script("train.py", [*TINY, "ckpt_path=last_or_new", "hydra.run.dir=fresh"],
                       cwd=tmp_path, env={"SLURM_RESTART_COUNT": None})
    assert fresh.returncode == 0 and "step=3 " in fresh.stdout, fresh.stderr[-3000:]


@pytest.mark.slow
def test_two_runs_on_one_directory_and_a_killed_holder(tmp_path):
    first = _start([*LONG, "hydra.run.dir=run"], tmp_path)
    try:
        _wait_for(tmp_path / "run" / LOCK_NAME, first)
        second = run_script("train.py", [*LONG, "hydra.run.dir=run"], cwd=tmp_path, env=QUIET)
        assert second.returncode == 2
        assert _error_line(second).startswith(
            f"error: run directory {tmp_path / 'run'} is in use by pid {first.pid} on host "
            f"{host_name()} (since ")
        assert first.poll() is None  # the first run goes on
    finally:
        first.kill()  # SIGKILL: nothing saved, the lock is released by the kernel
        first.wait()
    third = run_script("train.py", [*TINY, "ckpt_path=last_or_new", "hydra.run.dir=run"],
                       cwd=tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["step"] == 3
    assert (tmp_path / "run" / LOCK_NAME).read_text() == ""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT])
def test_sighup_and_sigint_from_outside_save_and_exit_0(tmp_path, signum):
    process = _start([*LONG, "hydra.run.dir=run",
                      "callbacks.last_checkpoint.every_n_train_steps=1"], tmp_path)
    _wait_for(tmp_path / "run" / "checkpoints" / "last.ckpt", process)
    start = time.monotonic()
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    assert f"stopped by {signal.Signals(signum).name} at step" in stdout
    assert time.monotonic() - start < 60  # one batch and one checkpoint, no validation
    step = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"]
    assert step >= 1


@pytest.mark.slow
def test_prepare_refuses_an_input_inside_out_in_one_line(tmp_path):
    out = tmp_path / "out"
    run = run_script("prepare_data.py", [str(proteins_fasta(tmp_path / "a.fasta")), "--out",
                                         str(out)], cwd=tmp_path, env=QUIET)
    assert run.returncode == 0, run.stderr
    inside = proteins_fasta(out / "b.fasta", seed=1)
    refused = run_script("prepare_data.py", [str(inside), "--out", str(out), "--force"],
                         cwd=tmp_path, env=QUIET)
    assert refused.returncode == 2
    assert refused.stderr == (f"error: {inside}: the input lies inside the output directory "
                              f"{out}; move it out or choose another --out\n")
    assert inside.is_file()


@pytest.mark.slow
def test_training_on_a_fasta_of_headers_fails_in_one_line_before_training(tmp_path):
    headers = tmp_path / "headers.fasta"
    headers.write_text(">a\n>b\n")
    result = run_script("train.py", [*TINY, f"data.path={headers}", "hydra.run.dir=run"],
                        cwd=tmp_path, env={**QUIET, "PROTPERF_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 2
    assert _error_line(result) == (f"error: {headers}: none of its 2 records was kept "
                                   "(empty=2): nothing to train on")
    assert not (tmp_path / "run" / "checkpoints").exists()
