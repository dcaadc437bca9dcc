"""Fault injection, in process (fast): each way a long run used to lose work or pass silently.

1. non-finite training stops with one line naming the step, no non-finite checkpoint;
2. ``ckpt_path=last`` that finds nothing is an error naming the folder (not in a requeued job);
3. ``prepare --force`` replaces only what preparation wrote; an input inside ``--out`` is refused;
4. one run per run directory (a lock naming its holder; a dead holder's lock is taken over);
5. no leftovers: partial files of dead writers go, one best checkpoint across stop + resume, a
   stop does not validate, SIGINT / SIGHUP save like SIGTERM;
6. empty splits and preparations that keep nothing fail in one line before training.
The same through real processes: ``test_fault_injection_processes.py`` (slow).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from protperf.app.train import main
from protperf.checkpoint.lightning_io import AtomicCheckpointIO, remove_dead_partials
from protperf.checkpoint.module import read_checkpoint
from protperf.data.config import PrepareConfig
from protperf.data.preparation.pipeline import prepare
from protperf.data.preparation.validate import verify_prepared
from protperf.data.shards import MANIFEST
from protperf.errors import (
    CheckpointError,
    DataError,
    RunDirectoryBusyError,
    TrainingDivergedError,
)
from protperf.runtime.best_checkpoints import adopt_best_files
from protperf.runtime.divergence import DivergenceGuard, is_diverging, uniform_loss
from protperf.runtime.run_dir import resolve_ckpt_path
from protperf.runtime.run_lock import LOCK_NAME, host_name, run_directory_lock
from protperf.training import train
from tests.model.conftest import REPO, compose_train
from tests.runtime.conftest import all_finite, proteins_fasta

SIGNALS = "tests.runtime.conftest.SignalsAtStep"
DIVERGING = ["optim.lr=1e6", "trainer.gradient_clip_val=0", "optim.warmup_steps=0"]


# -- 1. non-finite and diverging training ---------------------------------------------------
def test_nonfinite_loss_stops_with_one_line_and_keeps_the_finite_checkpoint(
        tmp_path, one_line_error):
    cfg = compose_train([*DIVERGING, "trainer.max_steps=8", "trainer.val_check_interval=8",
                         "callbacks.last_checkpoint.every_n_train_steps=1"], output_dir=tmp_path)
    code, line = one_line_error(lambda: main.run(cfg))
    assert code == 2
    assert line == (
        "error: training loss is nan at step 1: stopping before any weight becomes non-finite "
        "(0 of divergence.skip_nonfinite_batches=0 bad batches skipped); lower optim.lr or "
        f"set trainer.gradient_clip_val, then resume from {tmp_path}/checkpoints/last.ckpt "
        "(ckpt_path=last)")
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert read_checkpoint(last)["global_step"] == 1 and all_finite(last)
    assert not (tmp_path / "summary.json").exists()


def test_a_nonfinite_stop_before_any_checkpoint_says_start_again(tmp_path, one_line_error):
    cfg = compose_train([*DIVERGING, "trainer.max_steps=8", "trainer.val_check_interval=8"],
                        output_dir=tmp_path)
    code, line = one_line_error(lambda: main.run(cfg))
    assert (code, line) == (2, (
        "error: training loss is nan at step 1: stopping before any weight becomes non-finite "
        "(0 of divergence.skip_nonfinite_batches=0 bad batches skipped); lower optim.lr or "
        "set trainer.gradient_clip_val, then start again (no checkpoint was written yet)"))
    assert not list(tmp_path.glob("checkpoints/*.ckpt"))


def test_skipped_nonfinite_batches_are_counted_then_the_run_stops(tmp_path):
    cfg = compose_train([*DIVERGING, "divergence.skip_nonfinite_batches=2",
                         "trainer.max_steps=8", "trainer.val_check_interval=8"],
                        output_dir=tmp_path)
    with pytest.raises(TrainingDivergedError, match=r"^training loss is nan at step 3: .*"
                       r"\(2 of divergence.skip_nonfinite_batches=2 bad batches skipped\)"):
        train(cfg)


def _guard_step(guard, module, step=7, loss=None, scaler=None):
    trainer = SimpleNamespace(global_step=step, precision_plugin=SimpleNamespace(scaler=scaler))
    if loss is not None:
        guard.on_before_backward(trainer, module, torch.tensor(loss))
    guard.on_before_optimizer_step(trainer, module, None)


def test_guard_drops_nonfinite_gradients_within_the_budget():
    module = torch.nn.Linear(2, 1)
    guard = DivergenceGuard(skip_nonfinite_batches=1)
    for param in module.parameters():
        param.grad = torch.ones_like(param)
    _guard_step(guard, module, loss=1.0)  # finite: untouched
    assert all(p.grad is not None for p in module.parameters()) and guard.skipped == 0
    module.weight.grad = torch.tensor([[math.inf, 0.0]])
    _guard_step(guard, module)
    assert all(p.grad is None for p in module.parameters()) and guard.skipped == 1
    assert guard.state_dict() == {"skipped": 1}  # kept in checkpoints: counted over the run
    module.weight.grad = torch.tensor([[math.nan, 0.0]])
    with pytest.raises(TrainingDivergedError, match="^gradient norm is nan at step 7: "):
        _guard_step(guard, module)
    with pytest.raises(TrainingDivergedError, match="^training loss is inf at step 9: "):
        _guard_step(guard, module, step=9, loss=math.inf)
    module.weight.grad = torch.tensor([[math.inf, 0.0]])
    _guard_step(DivergenceGuard(), module, scaler=object())  # fp16: the scaler's business


def test_checkpoint_writer_never_replaces_a_checkpoint_with_nonfinite_weights(tmp_path):
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"the finite checkpoint")
    bad = {"state_dict": {"a": torch.ones(2), "b": torch.tensor([1.0, math.nan])},
           "global_step": 5}
    with pytest.raises(TrainingDivergedError) as error:
        AtomicCheckpointIO().save_checkpoint(bad, path)
    assert str(error.value) == (f"not writing checkpoint {path} at step 5: weight b is not "
                                "finite (NaN or inf); the previous checkpoint is kept")
    assert path.read_bytes() == b"the finite checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_diverging_validation_is_warned_about(caplog):
    assert uniform_loss(30) == pytest.approx(3.4012, abs=1e-4)
    assert not is_diverging(3.45, 30, 1.0)  # an untrained model: about uniform
    assert is_diverging(90.0, 30, 1.0) and is_diverging(math.nan, 30, 1.0)
    trainer = SimpleNamespace(sanity_checking=False, global_step=200,
                              callback_metrics={"val/loss": torch.tensor(90.1)})
    module = SimpleNamespace(model_config=SimpleNamespace(vocab_size=30))
    guard = DivergenceGuard()
    with caplog.at_level(logging.WARNING, logger="protperf.runtime.divergence"):
        guard.on_validation_end(trainer, module)
        guard.on_validation_end(trainer, module)  # the final validation at the same step
    assert caplog.messages == [
        "training is diverging: val/loss=90.1 at step 200 is more than 1 nats above uniform "
        "guessing (ln 30 = 3.401); lower optim.lr or set trainer.gradient_clip_val"]


# -- 2. ckpt_path=last that finds nothing ---------------------------------------------------
def test_ckpt_path_last_without_a_checkpoint_is_an_error_naming_the_folder(tmp_path,
                                                                          monkeypatch):
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    with pytest.raises(CheckpointError) as error:
        resolve_ckpt_path("last", tmp_path / "mistyped")
    assert str(error.value) == (
        f"ckpt_path=last: no checkpoint in {tmp_path / 'mistyped' / 'checkpoints'} (is "
        "hydra.run.dir the folder of the run to resume?); ckpt_path=last_or_new starts a new "
        "run there when it holds none")
    assert resolve_ckpt_path("last_or_new", tmp_path) is None  # explicit: a fresh start
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # requeued before its first checkpoint
    assert resolve_ckpt_path("last", tmp_path) is None
    assert resolve_ckpt_path(None, tmp_path) is None


def test_train_with_ckpt_path_last_in_an_empty_folder_fails_before_training(
        tmp_path, one_line_error, monkeypatch):
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    cfg = compose_train(["ckpt_path=last"], output_dir=tmp_path / "typo")
    code, line = one_line_error(lambda: main.run(cfg))
    assert code == 2 and line.startswith(
        f"error: ckpt_path=last: no checkpoint in {tmp_path / 'typo' / 'checkpoints'} ")
    assert not (tmp_path / "typo" / "checkpoints").exists()


# -- 3. prepare --force ---------------------------------------------------------------------
def test_force_replaces_only_what_preparation_wrote(tmp_path):
    source = proteins_fasta(tmp_path / "in.fasta")
    out = tmp_path / "out"
    prepare(source, out, PrepareConfig(valid_fraction=0.2))
    (out / "notes.txt").write_text("mine")
    (out / "mine").mkdir()
    (out / "mine" / "x.bin").write_bytes(b"x")
    manifest = prepare(source, out, PrepareConfig(valid_fraction=0.3), overwrite=True)
    assert verify_prepared(out) == manifest and manifest["settings"]["valid_fraction"] == 0.3
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "mine" / "x.bin").read_bytes() == b"x"
    assert not [p for p in tmp_path.iterdir() if ".old-" in p.name or ".tmp-" in p.name]
    # a file of the user's among the shards: refused, nothing changed
    (out / "train" / "README").write_text("also mine")
    with pytest.raises(DataError) as error:
        prepare(source, out, PrepareConfig(valid_fraction=0.2), overwrite=True)
    assert str(error.value) == (f"{out / 'train' / 'README'}: not a shard file, in a split "
                                "folder of the prepared directory being replaced; move it "
                                "away first")
    assert json.loads((out / MANIFEST).read_text()) == manifest


def test_an_input_inside_the_output_directory_is_refused(tmp_path):
    out = tmp_path / "out"
    prepare(proteins_fasta(tmp_path / "in.fasta"), out)
    inside = proteins_fasta(out / "in.fasta", seed=1)
    before = sorted(p.name for p in out.iterdir())
    for overwrite in (False, True):
        with pytest.raises(DataError) as error:
            prepare(inside, out, overwrite=overwrite)
        assert str(error.value) == (f"{inside}: the input lies inside the output directory "
                                    f"{out}; move it out or choose another --out")
    assert sorted(p.name for p in out.iterdir()) == before


# -- 4. one run per run directory -----------------------------------------------------------
HOLDER = """
import sys, time
from protperf.runtime.run_lock import run_directory_lock
with run_directory_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def _holder(run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], env=env,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "held\n"
    return process


def test_a_second_run_is_refused_naming_the_holder_and_a_dead_holder_is_taken_over(tmp_path):
    process = _holder(tmp_path)
    try:
        with pytest.raises(RunDirectoryBusyError) as error, run_directory_lock(tmp_path):
            pass
        assert str(error.value).startswith(
            f"run directory {tmp_path} is in use by pid {process.pid} on host {host_name()} "
            "(since ")
        assert str(error.value).endswith(
            "): one run per directory (wait for it to end, or choose another hydra.run.dir)")
    finally:
        process.kill()  # SIGKILL: the kernel releases its lock
        process.wait()
    with run_directory_lock(tmp_path) as lock:  # taken over at once
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert (tmp_path / LOCK_NAME).read_text() == ""  # released: no stale holder recorded


def test_ddp_ranks_other_than_zero_share_the_lock(tmp_path, monkeypatch):
    with run_directory_lock(tmp_path):
        monkeypatch.setenv("LOCAL_RANK", "1")  # a rank started by Lightning
        with run_directory_lock(tmp_path) as lock:
            assert lock is None


def test_train_refuses_a_run_directory_in_use(tmp_path, one_line_error):
    process = _holder(tmp_path)
    try:
        code, line = one_line_error(lambda: main.run(compose_train([], output_dir=tmp_path)))
    finally:
        process.kill()
        process.wait()
    assert code == 2 and line.startswith(
        f"error: run directory {tmp_path} is in use by pid {process.pid} ")
    assert not (tmp_path / "checkpoints").exists()


# -- 5. leftovers, prompt stops, SIGINT / SIGHUP --------------------------------------------
def _dead_pid() -> str:
    return subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()


def test_partial_checkpoints_of_dead_writers_are_removed(tmp_path):
    host = host_name().replace("-", "_")
    dead = _dead_pid()
    names = {f".last.ckpt.tmp-{host}-{dead}": False, f".last.ckpt.tmp-{dead}": False,
             f".last.ckpt.tmp-{host}-{os.getpid()}": True,  # a live writer
             f".last.ckpt.tmp-otherhost-{dead}": True, "last.ckpt": True}
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    removed = remove_dead_partials(tmp_path)
    assert sorted(p.name for p in removed) == sorted(n for n, kept in names.items() if not kept)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, k in names.items() if k)


def _best_files(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").glob("best-*.ckpt"))


def test_a_stop_saves_without_validating_and_the_resumed_run_keeps_one_best(tmp_path):
    common = ["trainer.max_steps=6", "trainer.val_check_interval=2",
              "callbacks.last_checkpoint.every_n_train_steps=100"]
    stopped = train(compose_train([*common, f"+callbacks.stop={{_target_:{SIGNALS},step:3}}"],
                                  output_dir=tmp_path))
    assert (stopped["stopped_by"], stopped["step"]) == ("SIGUSR1", 3)
    metrics = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    assert metrics.dropna(subset=["val/loss"])["step"].tolist() == [1]  # step 2 only, not 3
    assert _best_files(tmp_path) == ["best-step000002.ckpt"]
    host = host_name().replace("-", "_")
    partial = tmp_path / "checkpoints" / f".last.ckpt.tmp-{host}-{_dead_pid()}"
    partial.write_bytes(b"an interrupted write")
    resumed = train(compose_train([*common, "ckpt_path=last"], output_dir=tmp_path))
    assert resumed["step"] == 6
    assert _best_files(tmp_path) == [Path(resumed["best_checkpoint"]).name]
    assert not partial.exists()  # removed when the resumed run started


def test_train_then_extend_keeps_one_best_file_the_better_one(tmp_path):
    common = ["trainer.val_check_interval=2", "callbacks.last_checkpoint.every_n_train_steps=100"]
    first = train(compose_train([*common, "trainer.max_steps=2"], output_dir=tmp_path))
    # last.ckpt was saved at step 2 before the validation that wrote best-step000002.ckpt
    assert _best_files(tmp_path) == ["best-step000002.ckpt"]
    second = train(compose_train([*common, "trainer.max_steps=4", "ckpt_path=last"],
                                 output_dir=tmp_path))
    better = 2 if first["val_loss"] <= second["val_loss"] else 4
    assert _best_files(tmp_path) == [f"best-step{better:06d}.ckpt"]
    assert Path(second["best_checkpoint"]).name == f"best-step{better:06d}.ckpt"


def test_an_unknown_better_best_file_is_adopted_and_the_worse_one_removed(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path, monitor="val/loss", save_top_k=1)
    older, known = tmp_path / "best-step000002.ckpt", tmp_path / "best-step000004.ckpt"
    for path, score in ((older, 1.5), (known, 2.5)):
        state = {"monitor": "val/loss", "best_k_models": {str(path): torch.tensor(score)}}
        torch.save({"callbacks": {callback.state_key: state}}, path)
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")  # not a best file: left alone
    callback.best_k_models = {str(known): torch.tensor(2.5)}  # the restored state
    assert adopt_best_files(callback, remove=True) == [str(older)]
    assert callback.best_k_models == {str(older): torch.tensor(1.5)}
    assert callback.best_model_path == callback.kth_best_model_path == str(older)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-step000002.ckpt", "other.ckpt"]


@pytest.mark.parametrize("signum", ["SIGINT", "SIGHUP"])
def test_sigint_and_sighup_save_like_sigterm(tmp_path, signum):
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a shell's background job
    stopped = train(compose_train(
        ["trainer.max_steps=6", f"+callbacks.stop={{_target_:{SIGNALS},step:2,signum:{signum}}}"],
        output_dir=tmp_path))
    assert (stopped["stopped_by"], stopped["step"]) == (signum, 2)
    assert read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 2
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_a_second_ctrl_c_interrupts_at_once(tmp_path):
    cfg = compose_train(["trainer.max_steps=6",
                         f"+callbacks.stop={{_target_:{SIGNALS},step:2,signum:SIGINT,times:2}}"],
                        output_dir=tmp_path)
    with pytest.raises(SystemExit) as exited:  # Lightning's shutdown after KeyboardInterrupt
        train(cfg)
    assert exited.value.code == 1
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning left SIG_IGN


# -- 6. empty splits ------------------------------------------------------------------------
def test_a_preparation_that_keeps_nothing_is_an_error(tmp_path):
    source = tmp_path / "headers.fasta"
    source.write_text(">a\n>b\n>c\n")
    with pytest.raises(DataError) as error:
        prepare(source, tmp_path / "out")
    assert str(error.value) == (f"{source}: none of its 3 records was kept (empty=3): nothing "
                                "to train on")
    assert not (tmp_path / "out").exists()


def test_training_without_a_validation_split_fails_before_training(tmp_path, one_line_error):
    prepared = tmp_path / "prepared"
    prepare(proteins_fasta(tmp_path / "in.fasta"), prepared,
            PrepareConfig(valid_fraction=0.0, test_fraction=0.0))
    cfg = compose_train([f"data.path={prepared}"], output_dir=tmp_path / "run")
    code, line = one_line_error(lambda: main.run(cfg))
    assert code == 2
    assert line == (f"error: {prepared}: the valid split holds no sequences (train 60, valid 0, "
                    f"test 0; prepared with valid_fraction=0.0, test_fraction=0.0 from "
                    f"{tmp_path / 'in.fasta'}): give more sequences or raise "
                    "data.prepare.valid_fraction / test_fraction")
    assert not (tmp_path / "run" / "checkpoints").exists()
