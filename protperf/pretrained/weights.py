"""Reading weight files safely: safetensors, or ``torch.load(weights_only=True)``.

Pickled files (HF ``pytorch_model.bin``, fair-esm ``.pt``) are unpickled by torch's
restricted unpickler, which builds tensors and plain containers only. The one other type
allowed is :class:`argparse.Namespace`, which fair-esm checkpoints pickle for their
configuration (``cfg["model"]`` of ESM-2, ``args`` of ESM-1 files). A file whose unpickling
would call anything else (run code) is refused with one line naming what it refers to.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from protperf.checkpoint.load import first_line, load_weights_only
from protperf.errors import CheckpointError, PretrainedSourceError, require

#: The only non-tensor, non-container type a pickled weight file may hold.
SAFE_GLOBALS = (argparse.Namespace,)


def load_pickled(path: Path) -> Any:
    """``torch.load`` a pickled file with ``weights_only=True`` (+ ``argparse.Namespace``)."""
    return load_weights_only(
        path, str(path), "protperf reads only tensors, plain containers and argparse.Namespace "
        "(convert the trusted file to safetensors)", tuple(SAFE_GLOBALS))


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a ``.safetensors`` file (no code can run while reading it)."""
    safetensors = require("safetensors", f"reading {path}")
    require("safetensors.torch", f"reading {path}")
    try:
        return safetensors.torch.load_file(path, device="cpu")
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors file "
                              f"({first_line(error)})") from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of one weight file: ``*.safetensors`` or a pickled ``*.bin`` / ``*.pt``."""
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    state = load_pickled(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedSourceError(f"{path} is not a state dict (a mapping of names to tensors)")
    return state


#: Weight files of an HF directory, in the order transformers prefers them.
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def read_hf_weights(directory: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of an HF model directory (single file or sharded with an index) and the
    name of what was read. Raises :class:`PretrainedSourceError` if it holds no weights."""
    for name in HF_WEIGHT_FILES:
        single, index = directory / name, directory / f"{name}.index.json"
        if single.is_file():
            return read_state_dict(single), name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise PretrainedSourceError(f"{index} is not a weight index "
                                            f"({first_line(error)})") from None
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(read_state_dict(directory / shard))
            return state, index.name
    raise PretrainedSourceError(
        f"{directory} holds no weights (expected {' or '.join(HF_WEIGHT_FILES)}, or a sharded "
        "*.index.json)"
    )

