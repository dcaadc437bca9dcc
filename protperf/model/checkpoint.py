"""Reading protperf checkpoints safely (``weights_only=True``) with errors naming the file
(writing them atomically: :mod:`protperf.runtime.checkpoint_io`)."""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from protperf.data.alphabet import ALPHABET
from protperf.errors import CheckpointError, CheckpointMismatchError
from protperf.model.compat import check_compatible, merge_overrides
from protperf.model.lightning import ProteinLMModule


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load`` a Lightning checkpoint with ``weights_only=True`` onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights_only" not in str(error).lower().replace(" ", "_"):
            raise CheckpointError(f"checkpoint {path} is corrupt ({_first_line(error)})") from None
        raise CheckpointError(
            f"checkpoint {path} holds pickled Python code, which safe loading "
            f"(weights_only=True) refuses: {_unsupported_global(error)}; only load checkpoints "
            "written by protperf, or re-save the trusted file's plain tensors"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({_first_line(error)})"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(f"{path} is not a protperf training checkpoint (not a dict)")
    if "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise CheckpointMismatchError(
            f"{path} is not a protperf training checkpoint (no state_dict / hyper_parameters)"
        )
    return checkpoint


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0].strip()


def _unsupported_global(error: BaseException) -> str:
    """The offending name out of torch's long weights_only message."""
    found = re.search(r"GLOBAL (\S+)", str(error))
    if found:
        return f"it refers to {found.group(1)}"
    for line in str(error).splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip()
    return _first_line(error)


def load_module(
    path: str | Path,
    model_overrides: Mapping[str, Any] | None = None,
    task_overrides: Mapping[str, Any] | None = None,
) -> ProteinLMModule:
    """Rebuild the LightningModule stored in ``path`` (weights_only) and load its weights.

    ``model_overrides`` may change what does not change parameter shapes, e.g.
    ``{"attention": {"kind": "favor_relu"}}`` to evaluate exact-attention weights as a
    Performer; changing a shape-defining key raises :class:`CheckpointMismatchError`.
    """
    checkpoint = read_checkpoint(path)
    saved = checkpoint["hyper_parameters"]
    hparams = dict(saved)
    hparams["model"] = merge_overrides(saved["model"], model_overrides)
    hparams["task"] = merge_overrides(saved["task"], task_overrides)
    hparams["alphabet"] = list(ALPHABET.tokens)
    check_compatible(saved, hparams, source=f"checkpoint {path}")
    module = ProteinLMModule(
        model=hparams["model"],
        task=hparams["task"],
        optim=saved.get("optim"),
        seed=saved.get("seed", 0),
    )
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise CheckpointMismatchError(
            f"checkpoint {path} does not fit the model built from its config: {error}"
        ) from None
    return module
