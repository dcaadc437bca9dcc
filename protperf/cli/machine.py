"""Does this machine have what the config asks for? Checked before any heavy import or work.

A GPU trainer or device on a machine without CUDA, ``model.attention.backend=fla`` without
flash-linear-attention, or the SLURM launcher where ``sbatch`` is not on the PATH fails in
one line (:class:`ConfigError`, exit 2) naming the key, not deep inside Lightning, Triton or
submitit.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Sequence
from typing import Any

from protperf.attention.config import FLA_MISSING
from protperf.errors import ConfigError

GPU_ACCELERATORS = ("gpu", "cuda")
#: Command-line choices of ``hydra/launcher`` that submit to SLURM.
SLURM_LAUNCHERS = ("slurm", "submitit_slurm")
MULTIRUN_FLAGS = {"-m", "--multirun"}
PRINT_ONLY_FLAGS = {"--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i"}


def cuda_available() -> bool:
    """True when torch sees a CUDA device (imports torch, not Lightning)."""
    import torch

    return torch.cuda.is_available()


def fla_installed() -> bool:
    """True when flash-linear-attention can be found (without importing it)."""
    return importlib.util.find_spec("fla") is not None


def _needs_cuda(config: Any) -> list[tuple[str, str]]:
    """``(key=value, what to use instead)`` for each setting of ``config`` that needs CUDA."""
    needs = []
    trainer = getattr(config, "trainer", None)
    if trainer is not None and str(trainer.accelerator).lower() in GPU_ACCELERATORS:
        needs.append((f"trainer.accelerator={trainer.accelerator}", "trainer=default (CPU)"))
    device = getattr(config, "device", None)
    if isinstance(device, str) and device.split(":")[0].lower() == "cuda":
        needs.append((f"device={device}", "device=cpu"))
    return needs


def _attention_backend(config: Any) -> str | None:
    attention = getattr(getattr(config, "model", None), "attention", None)
    return getattr(attention, "backend", None)


def check_machine(config: Any) -> None:
    """Raise :class:`ConfigError` when a command's typed root asks for a GPU (trainer,
    device) or the fla backend this machine lacks."""
    needs = _needs_cuda(config)
    if _attention_backend(config) == "fla":
        if not fla_installed():
            raise ConfigError(FLA_MISSING)
        needs.append(("model.attention.backend=fla", "model.attention.backend=auto"))
    if needs and not cuda_available():
        raise ConfigError(
            f"{', '.join(key for key, _ in needs)} needs a CUDA GPU and none is visible on this "
            f"machine (use {' / '.join(instead for _, instead in needs)})")


def check_launcher(argv: Sequence[str]) -> None:
    """Raise :class:`ConfigError` when a sweep (``-m``) is to be launched through SLURM
    (``hydra/launcher=slurm``) on a machine without SLURM's ``sbatch``. Without ``-m`` the
    launcher is not used, and printing the config (``--cfg``, ``--help``, ``--info``) submits
    nothing, so neither needs SLURM."""
    if not set(argv) & MULTIRUN_FLAGS or set(argv) & PRINT_ONLY_FLAGS:
        return
    for arg in argv:
        key, _, value = arg.lstrip("+~").partition("=")
        if key.removeprefix("override ") == "hydra/launcher" and value in SLURM_LAUNCHERS:
            if shutil.which("sbatch") is None:
                raise ConfigError(
                    f"{arg}: SLURM's sbatch is not on the PATH: submit from a cluster login "
                    "node (where sbatch is), or drop hydra/launcher=slurm to run here"
                )
