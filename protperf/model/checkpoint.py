"""Loading protperf checkpoints safely (``weights_only=True``) with clear mismatch errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from protperf.data.alphabet import Alphabet
from protperf.errors import CheckpointMismatchError
from protperf.model.compat import check_compatible, merge_overrides
from protperf.model.lightning import ProteinLMModule


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load`` a Lightning checkpoint with ``weights_only=True`` onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise CheckpointMismatchError(
            f"{path} is not a protperf training checkpoint (no state_dict / hyper_parameters)"
        )
    return checkpoint


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
    hparams["alphabet"] = list(Alphabet().tokens)
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
