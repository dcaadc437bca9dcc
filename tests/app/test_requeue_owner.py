"""One owner of SLURM requeue: submitit (its signal reaches ResumeCheckpoint), not Lightning."""

from __future__ import annotations

import signal

from hydra import compose, initialize_config_dir
from submitit.slurm.slurm import SlurmJobEnvironment, _make_sbatch_string

from protperf.cli.registry import load_config, register_schemas
from protperf.conf import CONF_DIR
from protperf.runtime.preemption import STOP_SIGNALS
from protperf.training import build_trainer
from tests.model.conftest import compose_train


def _compose(overrides: list[str]):
    register_schemas()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_submitit_signal_is_one_that_stops_training_with_a_checkpoint(tmp_path):
    launcher = _compose(["hydra/launcher=slurm"]).hydra.launcher
    assert launcher.signal_delay_s == 120 and launcher.max_num_timeout > 0
    sbatch = _make_sbatch_string(command="true", folder=str(tmp_path),
                                 signal_delay_s=launcher.signal_delay_s)
    assert f"#SBATCH --signal=USR2@{launcher.signal_delay_s}" in sbatch
    assert getattr(signal, "SIG" + SlurmJobEnvironment.USR_SIG) in STOP_SIGNALS


def test_lightning_does_not_requeue_under_slurm(monkeypatch, tmp_path):
    for key, value in {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "protperf", "SLURM_JOB_ID": "7",
                       "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}.items():
        monkeypatch.setenv(key, value)
    cfg = compose_train([], output_dir=tmp_path)
    trainer = build_trainer(load_config("train", cfg))
    environment = trainer._accelerator_connector.cluster_environment
    assert type(environment).__name__ == "SLURMEnvironment"
    assert environment.auto_requeue is False
