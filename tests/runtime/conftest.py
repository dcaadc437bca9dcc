"""Helpers for the fault-injection tests: tiny runs, small FASTA files, signals at a step."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import lightning.pytorch as pl
import pytest

from protperf.checkpoint.module import read_checkpoint
from tests.model.conftest import _private_data_cache  # noqa: F401 (autouse: a private cache)


def proteins_fasta(path: Path, count: int = 60, seed: int = 0) -> Path:
    """``count`` random proteins of 30-60 residues (ids p0, p1, ...)."""
    rng = random.Random(seed)
    path.write_text("".join(
        f">p{k}\n{''.join(rng.choices('ACDEFGHIKLMNPQRSTVWY', k=rng.randint(30, 60)))}\n"
        for k in range(count)))
    return path


def all_finite(checkpoint_path: Path) -> bool:
    state = read_checkpoint(checkpoint_path)["state_dict"]
    return all(bool(v.isfinite().all()) for v in state.values() if v.is_floating_point())


class SignalsAtStep(pl.Callback):
    """Sends ``signum`` to this process ``times`` times at the start of the batch after
    ``step - 1`` steps (a user's Ctrl-C, a closed terminal, SLURM)."""

    def __init__(self, step: int, signum: str = "SIGUSR1", times: int = 1) -> None:
        self.step, self.signum, self.times = step, getattr(signal, signum), times

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step - 1:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


@pytest.fixture
def one_line_error(capsys, monkeypatch):
    """Run ``call`` (a command's ``main.run(cfg)``); returns its exit code and its one
    ``error: `` line on stderr (there must be exactly one, and no traceback)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def run(call) -> tuple[int, str]:
        with pytest.raises(SystemExit) as exited:
            call()
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
        return exited.value.code, lines[0]

    return run
