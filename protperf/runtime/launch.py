"""Checks on how a training job was launched (DDP inside Hydra sweeps)."""

from __future__ import annotations

from lightning.fabric.plugins.environments import (
    LSFEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)

from protperf.errors import ConfigError


def processes_started_externally() -> bool:
    """True under a launcher that starts every DDP process itself (SLURM tasks, torchrun, LSF),
    so Lightning does not re-run the command line for the extra processes."""
    return any(env.detect() for env in (SLURMEnvironment, TorchElasticEnvironment, LSFEnvironment))


def check_ddp_launch(strategy: str, devices: object, num_nodes: int, multirun: bool,
                     external: bool | None = None) -> None:
    """Refuse a multi-process DDP job inside a local Hydra sweep (``-m``).

    Lightning starts the extra DDP processes by re-running ``sys.argv``; inside a basic or
    submitit-local sweep that is the whole sweep again, which hangs or trains the wrong job.
    Under SLURM (one task per device) or torchrun the processes exist already and it is fine.
    ``multirun``: inside a sweep (:func:`protperf.cli.hydra_runtime.in_sweep`); ``external``
    defaults to the cluster environment.
    """
    multi_process = "ddp" in str(strategy) and (
        num_nodes > 1 or not isinstance(devices, int) or devices > 1)
    if not multi_process:
        return
    external = processes_started_externally() if external is None else external
    if multirun and not external:
        raise ConfigError(
            f"trainer.strategy={strategy} with trainer.devices={devices} in a Hydra sweep (-m) "
            "needs a launcher that starts one process per device: use hydra/launcher=slurm "
            "(README, 'Running on a cluster'), or run each DDP job without -m"
        )
