"""DDP inside local Hydra sweeps is refused with a clear message (it would re-run the sweep)."""

from __future__ import annotations

import runpy
import sys

import pytest

from protperf.errors import ConfigError
from protperf.runtime.launch import check_ddp_launch
from tests.scale.conftest import REPO, TINY


def test_check_ddp_launch_cases():
    check_ddp_launch("ddp", 2, 1, multirun=False, external=False)  # a single DDP run
    check_ddp_launch("ddp", 4, 1, multirun=True, external=True)  # a SLURM sweep
    check_ddp_launch("auto", 1, 1, multirun=True, external=False)  # one process per job
    check_ddp_launch("ddp", 1, 1, multirun=True, external=False)
    with pytest.raises(ConfigError, match="trainer.strategy=ddp with trainer.devices=2 in a "
                                          "Hydra sweep .* use hydra/launcher=slurm"):
        check_ddp_launch("ddp", 2, 1, multirun=True, external=False)
    with pytest.raises(ConfigError, match="hydra/launcher=slurm"):
        check_ddp_launch("ddp", 1, 2, multirun=True, external=False)


def test_local_sweep_with_ddp_stops_before_training(tmp_path, monkeypatch, capsys):
    for var in ("SLURM_NTASKS", "SLURM_JOB_NAME", "LOCAL_RANK", "GROUP_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", "-m", "trainer=ddp", "model=transformer",
                                      *TINY, "hydra.sweep.dir=sweep"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "scripts" / "train.py"), run_name="__main__")
    assert exit_info.value.code == 2
    assert "in a Hydra sweep (-m) needs a launcher" in capsys.readouterr().err
    assert not list(tmp_path.glob("sweep/*/checkpoints"))
