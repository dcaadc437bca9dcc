"""A config that asks for what this machine lacks (a GPU, fla, SLURM) fails in one line, exit
2, before Lightning or the model is imported."""

from __future__ import annotations

import shutil

import pytest

from protperf.cli import machine
from protperf.cli.compose import compose_config
from protperf.cli.registry import load_config
from protperf.errors import ConfigError
from tests.cli.helpers import error_line, run_command

NO_GPU = ("trainer.accelerator=gpu needs a CUDA GPU and none is visible on this machine (use "
          "trainer=default (CPU))")
NO_FLA = ("model.attention.backend='fla' needs flash-linear-attention and Triton: pip install "
          "'protperf[gpu]' (or use backend=auto)")


def _train(overrides: list[str]):
    return load_config("train", compose_config("train", [*overrides, "output_dir=unused"]))


@pytest.mark.parametrize("override", ["trainer=gpu", "trainer=ddp_gpu",
                                      "trainer.accelerator=gpu", "trainer.accelerator=cuda"])
def test_gpu_trainer_without_cuda(override, monkeypatch):
    monkeypatch.setattr(machine, "cuda_available", lambda: False)
    with pytest.raises(ConfigError) as error:
        machine.check_machine(_train([override]))
    accelerator = "cuda" if override.endswith("cuda") else "gpu"
    assert str(error.value) == NO_GPU.replace("accelerator=gpu", f"accelerator={accelerator}")


def test_gpu_trainer_with_cuda_passes(monkeypatch):
    monkeypatch.setattr(machine, "cuda_available", lambda: True)
    machine.check_machine(_train(["trainer=gpu"]))


def test_cuda_device_of_an_inference_command(monkeypatch):
    monkeypatch.setattr(machine, "cuda_available", lambda: False)
    config = load_config("embed", compose_config(
        "embed", ["checkpoint=x.ckpt", "output_dir=o", "device=cuda:1"]))
    with pytest.raises(ConfigError) as error:
        machine.check_machine(config)
    assert str(error.value) == ("device=cuda:1 needs a CUDA GPU and none is visible on this "
                                "machine (use device=cpu)")


def test_fla_backend_without_fla_or_cuda(monkeypatch):
    config = _train(["model.attention.backend=fla"])
    monkeypatch.setattr(machine, "fla_installed", lambda: False)
    with pytest.raises(ConfigError) as error:
        machine.check_machine(config)
    assert str(error.value) == NO_FLA
    monkeypatch.setattr(machine, "fla_installed", lambda: True)
    monkeypatch.setattr(machine, "cuda_available", lambda: False)
    with pytest.raises(ConfigError) as error:
        machine.check_machine(config)
    assert str(error.value) == (
        "model.attention.backend=fla needs a CUDA GPU and none is visible on this machine (use "
        "model.attention.backend=auto)")


@pytest.mark.parametrize("arg", ["hydra/launcher=slurm", "hydra/launcher=submitit_slurm",
                                 "override hydra/launcher=slurm"])
def test_slurm_launcher_without_sbatch(arg, monkeypatch):
    monkeypatch.setattr(machine.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match=r"SLURM's sbatch is not on the PATH: submit from"):
        machine.check_launcher(["-m", arg, "trainer.max_steps=3"])
    machine.check_launcher(["-m", "hydra/launcher=local"])  # other launchers are not checked
    machine.check_launcher([arg, "trainer.max_steps=3"])  # no sweep: the launcher is unused
    machine.check_launcher(["-m", arg, "--cfg", "hydra"])  # printing the config submits nothing


@pytest.mark.skipif(machine.cuda_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("override", ["trainer=gpu", "trainer=ddp_gpu", "trainer.accelerator=gpu"])
def test_gpu_trainer_as_a_command(override, tmp_path):
    result = run_command("train.py", [override, "hydra.run.dir=run"], tmp_path)
    assert error_line(result) == f"error: {NO_GPU}"
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.skipif(machine.fla_installed(), reason="fla is installed here")
def test_fla_backend_as_a_command(tmp_path):
    result = run_command("train.py", ["model.attention.backend=fla", "hydra.run.dir=run"],
                         tmp_path)
    assert error_line(result) == f"error: {NO_FLA}"


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="SLURM is installed here")
def test_slurm_launcher_as_a_command(tmp_path):
    result = run_command("train.py", ["-m", "hydra/launcher=slurm", "trainer.max_steps=3"],
                         tmp_path)
    assert error_line(result) == (
        "error: hydra/launcher=slurm: SLURM's sbatch is not on the PATH: submit from a cluster "
        "login node (where sbatch is), or drop hydra/launcher=slurm to run here")
    assert not (tmp_path / "multirun").exists()
