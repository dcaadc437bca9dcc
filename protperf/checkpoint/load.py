"""Building the network of a saved model without Lightning: one :func:`load_model`.

A saved model is a training checkpoint (``.ckpt``, read with ``weights_only=True``) or an
export directory (:mod:`protperf.checkpoint.export_dir`: ``config.json`` + ``model.safetensors``).
Both give the same :class:`SavedModel` (hyper-parameters + the network's state dict), from
which :func:`build_model` rebuilds :class:`ProteinLanguageModel` after the alphabet and
architecture checks of :mod:`protperf.model.compat`. ``model_overrides`` change what does not
change parameter shapes (``{"attention": {"kind": "favor_relu"}}`` runs exact-attention weights
as a Performer). Random features a checkpoint does not hold (exact weights loaded as a
Performer) are drawn from a generator seeded by the saved ``seed``, so the same saved model
and overrides give the same network every time, from a ``.ckpt`` or its export.

Nothing here imports Lightning: embed / score / generate / analyze load through this module;
training and evaluation wrap the network in the LightningModule
(:func:`protperf.checkpoint.module.load_module`).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from protperf.checkpoint.export_dir import read_export_dir, tied_parameter_names
from protperf.checkpoint.integrity import INTEGRITY_KEY, check_finite, verify_integrity
from protperf.data.alphabet import ALPHABET
from protperf.errors import CheckpointError, CheckpointMismatchError
from protperf.model.compat import check_compatible, merge_overrides
from protperf.model.config import ModelConfig, TaskConfig
from protperf.model.transformer import ProteinLanguageModel
from protperf.structured import to_dataclass

#: Prefix of the network's weights in a LightningModule's state dict.
MODULE_PREFIX = "model."


@dataclass
class SavedModel:
    """What a checkpoint or an export directory holds for inference.

    hyper_parameters: plain dicts ``model``, ``task``, ``alphabet``, ``seed`` (and ``optim``).
    state_dict: the network's tensors (``ProteinLanguageModel.state_dict()`` keys).
    source: how messages name it (``checkpoint PATH`` / ``export directory PATH``).
    """

    hyper_parameters: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    source: str


#: First bytes of what ``torch.save`` writes: a zip archive, or a pickle (protocol >= 2).
CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")


def read_checkpoint(path: str | Path, verify: bool = True, mmap: bool = False) -> dict[str, Any]:
    """``torch.load`` a Lightning checkpoint with ``weights_only=True`` onto the CPU; with
    ``verify``, its weights are checked against their stored content hash
    (:mod:`protperf.checkpoint.integrity`); ``mmap``: tensors are read only when used."""
    path = Path(path)
    checkpoint = load_checkpoint_file(path, mmap)
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(f"{path} is not a protperf training checkpoint (not a dict)")
    if "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise CheckpointMismatchError(
            f"{path} is not a protperf training checkpoint (no state_dict / hyper_parameters)"
        )
    if verify:
        verify_integrity(checkpoint["state_dict"], checkpoint.get(INTEGRITY_KEY),
                         f"checkpoint {path}")
    return checkpoint


def load_checkpoint_file(path: Path, mmap: bool = False) -> Any:
    """What ``torch.save`` wrote at ``path`` (``weights_only=True``, CPU; ``mmap``: tensors read
    when used), unchecked: missing, foreign, corrupt or unsafe files are one line naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head and not head.startswith(CHECKPOINT_MAGIC):
        raise CheckpointError(
            f"checkpoint {path} is not a PyTorch checkpoint file (neither a zip archive nor a "
            f"pickle; it starts with {head!r})")
    return load_weights_only(
        path, f"checkpoint {path}",
        "only load checkpoints written by protperf, or re-save the trusted file's plain tensors",
        mmap=mmap)


def load_weights_only(path: Path, name: str, advice: str, safe_globals: tuple = (),
                      mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU (``safe_globals``: the only other
    types allowed); a refused, corrupt or truncated file raises :class:`CheckpointError` whose
    message starts with ``name`` (``advice``: what to do about pickled code)."""
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap or None)
    except pickle.UnpicklingError as error:
        if "weights_only" not in str(error).lower().replace(" ", "_"):
            raise CheckpointError(f"{name} is corrupt ({first_line(error)})") from None
        raise CheckpointError(
            f"{name} holds pickled Python code, which safe loading (weights_only=True) "
            f"refuses: {refused_global(error)}; {advice}"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        raise CheckpointError(f"{name} is truncated or corrupt ({first_line(error)})") from None


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0].strip()


def refused_global(error: BaseException) -> str:
    """The offending name out of torch's long weights_only message."""
    found = re.search(r"GLOBAL (\S+)", str(error))
    if found:
        return f"it refers to {found.group(1)}"
    for line in str(error).splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip()
    return first_line(error)


def read_saved_model(path: str | Path) -> SavedModel:
    """The hyper-parameters and network weights of a ``.ckpt`` file or an export directory,
    checked against their content hash and for non-finite weights (one line naming the file
    and the tensor)."""
    path = Path(path)
    if path.is_dir():
        hyper_parameters, state_dict = read_export_dir(path)
        saved = SavedModel(hyper_parameters, state_dict, f"export directory {path}")
    else:
        checkpoint = read_checkpoint(path)
        state_dict = {
            key.removeprefix(MODULE_PREFIX): value
            for key, value in checkpoint["state_dict"].items()
            if key.startswith(MODULE_PREFIX)
        }
        saved = SavedModel(checkpoint["hyper_parameters"], state_dict, f"checkpoint {path}")
    check_finite(saved.state_dict, saved.source)
    return saved


def resolve_configs(
    saved: SavedModel,
    model_overrides: Mapping[str, Any] | None = None,
    task_overrides: Mapping[str, Any] | None = None,
) -> tuple[ModelConfig, TaskConfig]:
    """The saved ``model`` / ``task`` configs with the overrides, checked against the saved
    alphabet and shape-defining keys (:class:`CheckpointMismatchError` naming the key)."""
    hparams = saved.hyper_parameters
    current = {
        "model": merge_overrides(hparams["model"], model_overrides),
        "task": merge_overrides(hparams["task"], task_overrides),
        "alphabet": list(ALPHABET.tokens),
    }
    check_compatible(hparams, current, source=saved.source)
    return (to_dataclass(ModelConfig, current["model"], "model"),
            to_dataclass(TaskConfig, current["task"], "task"))


def feature_seed(hyper_parameters: Mapping[str, Any]) -> int:
    """Seed of the random features drawn while building a saved model's network."""
    return int(hyper_parameters.get("seed", 0))


def load_weights(network: torch.nn.Module, saved: SavedModel) -> None:
    """``network.load_state_dict(saved.state_dict)`` with errors naming the first tensor that
    is missing, unexpected or of another shape (one line)."""
    expected = network.state_dict()
    given = saved.state_dict
    for name, wanted in expected.items():  # in the network's order: the first layer first
        tensor = given.get(name)
        if tensor is not None and tuple(tensor.shape) != tuple(wanted.shape):
            raise CheckpointMismatchError(
                f"{saved.source}: tensor {name} has shape {tuple(tensor.shape)} but the model "
                f"built from its config needs {tuple(wanted.shape)}"
            )
    result = network.load_state_dict(given, strict=False)
    missing = [name for name in result.missing_keys if name not in tied_parameter_names(network)]
    if missing or result.unexpected_keys:
        what = (f"lacks tensor {missing[0]}" if missing
                else f"has tensor {result.unexpected_keys[0]} the model does not")
        count = len(missing) + len(result.unexpected_keys)
        raise CheckpointMismatchError(
            f"{saved.source} does not fit the model built from its config: it {what}"
            + (f" ({count} tensors differ)" if count > 1 else "")
        )


def build_model(
    saved: SavedModel,
    model_overrides: Mapping[str, Any] | None = None,
    task_overrides: Mapping[str, Any] | None = None,
) -> ProteinLanguageModel:
    """The network of ``saved`` (train mode, CPU) with the overrides applied."""
    model_config, task_config = resolve_configs(saved, model_overrides, task_overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(feature_seed(saved.hyper_parameters))
        network = ProteinLanguageModel(model_config, causal=task_config.causal)
    load_weights(network, saved)
    return network


def load_model(
    path: str | Path,
    device: str | torch.device = "cpu",
    model_overrides: Mapping[str, Any] | None = None,
    task_overrides: Mapping[str, Any] | None = None,
) -> ProteinLanguageModel:
    """The :class:`ProteinLanguageModel` of a ``.ckpt`` file or export directory, in eval mode
    on ``device``; e.g. ``load_model("last.ckpt", model_overrides={"attention": {"kind":
    "favor_relu"}})``.

    Raises FileNotFoundError / CheckpointError / CheckpointMismatchError (one line, naming the
    file and key or tensor).
    """
    saved = read_saved_model(path)
    return build_model(saved, model_overrides, task_overrides).eval().to(device)
