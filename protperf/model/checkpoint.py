"""Loading protperf checkpoints safely (``weights_only=True``) with clear mismatch errors."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from protperf.data.alphabet import Alphabet

if TYPE_CHECKING:
    from protperf.model.lightning import ProteinLMModule

# Model keys that change parameter shapes: a checkpoint only loads into the same values.
ARCHITECTURE_KEYS = (
    "dim", "num_heads", "num_layers", "ffn_dim", "vocab_size", "position", "max_position",
    "tie_embeddings",
)


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the alphabet or architecture it is loaded into."""


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


def check_compatible(
    saved: Mapping[str, Any], current: Mapping[str, Any], source: str = "checkpoint"
) -> None:
    """Compare the alphabet and the shape-defining ``model.*`` keys of two hparam dicts."""
    saved_alphabet = list(saved.get("alphabet") or [])
    current_alphabet = list(current.get("alphabet") or Alphabet().tokens)
    if saved_alphabet and saved_alphabet != current_alphabet:
        first = next(
            (i for i, (a, b) in enumerate(zip(saved_alphabet, current_alphabet, strict=False))
            if a != b),
            min(len(saved_alphabet), len(current_alphabet)),
        )
        raise CheckpointMismatchError(
            f"{source} was trained with a different alphabet ({len(saved_alphabet)} tokens, "
            f"this code has {len(current_alphabet)}; first difference at token id {first}: "
            f"{saved_alphabet[first:first + 1]} vs {current_alphabet[first:first + 1]})"
        )
    saved_model, current_model = saved.get("model") or {}, current.get("model") or {}
    differences = [
        f"model.{key}={saved_model[key]!r} in the {source} but {current_model[key]!r} here"
        for key in ARCHITECTURE_KEYS
        if key in saved_model and key in current_model and saved_model[key] != current_model[key]
    ]
    if differences:
        raise CheckpointMismatchError(
            f"{source} has a different architecture: " + "; ".join(differences)
        )


def merge_overrides(values: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict:
    """Recursively overlay non-None ``overrides`` onto a copy of ``values``."""
    merged = copy.deepcopy(dict(values))
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged


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
    from protperf.model.lightning import ProteinLMModule

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
