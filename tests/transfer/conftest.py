"""Tiny exact-attention sources for the conversion tests: a masked LM saved through the
import writer (as ``protperf-import`` writes one) and a causal LM saved as training saves one."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import lightning
import lightning.pytorch as pl
import pytest
import torch

from protperf.attention import AttentionConfig
from protperf.checkpoint.imported import ImportedModel
from protperf.checkpoint.writer import write_imported
from protperf.model.config import ModelConfig
from protperf.model.lightning import ProteinLMModule

#: A few quiet steps on the bundled sample (the command-line keys of a tiny conversion).
CONVERT_TINY = [
    "model.attention.num_features=16", "data.max_length=48", "data.num_workers=0",
    "trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.limit_val_batches=2",
    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
    "~callbacks.progress_bar", "convert.warmup_steps=1",
    "callbacks.last_checkpoint.every_n_train_steps=2", "trainer.log_every_n_steps=1",
]


def sharp_exact_config() -> ModelConfig:
    return ModelConfig(name="tiny", dim=32, num_heads=2, num_layers=2, ffn_dim=64, dropout=0.0,
                       max_position=160, attention=AttentionConfig(kind="exact"))


def sharp_weights(module: torch.nn.Module, sharpness: float = 8.0) -> None:
    """Scale every query and key projection: attention far from uniform, so that zero-shot
    FAVOR+ is poor."""
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                parameter.mul_(sharpness)


def save_module(module: ProteinLMModule, path: Path) -> Path:
    """``module`` as the weights-only checkpoint training writes."""
    torch.save({"epoch": 0, "global_step": 0, "pytorch-lightning_version": lightning.__version__,
                "state_dict": module.state_dict(), "hparams_name": "kwargs",
                "hyper_parameters": dict(module.hparams)}, path)
    return path


@pytest.fixture(scope="session")
def exact_sources(tmp_path_factory) -> dict[str, Path]:
    """``{"mlm": imported-style masked LM, "clm": causal LM}``, random sharp exact models."""
    root = tmp_path_factory.mktemp("sources")
    torch.manual_seed(0)
    mlm = ProteinLMModule(model=sharp_exact_config(), task={"objective": "mlm"})
    sharp_weights(mlm)
    write_imported(ImportedModel(sharp_exact_config(), mlm.model.state_dict(), "hf-esm",
                                 "tiny-esm"), root / "mlm.ckpt")
    clm = ProteinLMModule(model=sharp_exact_config(), task={"objective": "clm"}, seed=1)
    sharp_weights(clm)
    return {"mlm": root / "mlm.ckpt", "clm": save_module(clm, root / "clm.ckpt")}


class SignalAtStep(pl.Callback):
    """Sends this process SIGUSR1 (SLURM's warning before a time limit) after ``step``
    steps: ``+callbacks.stop._target_=tests.transfer.conftest.SignalAtStep``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGUSR1)


def run_command(entry, args: list[str], cwd: Path, monkeypatch, capsys) -> tuple[int, str]:
    """Run a console entry point in this process as ``<command> args`` from ``cwd``: (exit
    status, stderr); stdout stays readable with ``capsys``."""
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setattr(sys, "argv", ["command", *args])
    try:
        entry()
        code = 0
    except SystemExit as stop:
        code = stop.code or 0
    captured = capsys.readouterr()
    sys.stdout.write(captured.out)  # captured again, for the caller
    return code, captured.err
