"""The tensors of a source model, taken by name with errors naming the tensor, and what an
importer hands to the checkpoint writer."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from protperf.errors import PretrainedSourceError

# Old TensorFlow-era names of LayerNorm parameters, renamed as transformers does on loading.
LEGACY_SUFFIXES = {".gamma": ".weight", ".beta": ".bias"}


class SourceTensors:
    """A source state dict; ``take`` marks tensors used, ``unused`` lists the rest.

    Args:
        state: tensor name -> tensor, as stored in the source file(s).
        source: the file or directory, named in errors.
    """

    def __init__(self, state: dict[str, torch.Tensor], source: str) -> None:
        self.source = source
        self.state = {_modern_name(name): tensor for name, tensor in state.items()}
        self.used: set[str] = set()

    def has(self, name: str) -> bool:
        return name in self.state

    def take(self, name: str, shape: Sequence[int | None]) -> torch.Tensor:
        """The tensor ``name`` in float32, checked against ``shape`` (None: any size)."""
        if name not in self.state:
            raise PretrainedSourceError(
                f"{self.source} has no tensor {name!r} (expected shape {_shape(shape)})"
            )
        tensor = self.state[name]
        fits = tensor.dim() == len(shape) and all(
            want is None or have == want for have, want in zip(tensor.shape, shape, strict=True)
        )
        if not fits:
            raise PretrainedSourceError(
                f"tensor {name!r} of {self.source} has shape {_shape(tensor.shape)}, but the "
                f"model described by its config needs {_shape(shape)}"
            )
        self.used.add(name)
        return tensor.detach().to(torch.float32)

    def mark_used(self, name: str) -> None:
        self.used.add(name)

    def unused(self) -> list[str]:
        """Names of the tensors nothing took, grouped by their first two name components
        (``cls.species.*``), sorted."""
        groups = {_group(name) for name in self.state if name not in self.used}
        return sorted(groups)


def _modern_name(name: str) -> str:
    for old, new in LEGACY_SUFFIXES.items():
        if name.endswith(old):
            return name[: -len(old)] + new
    return name


def _group(name: str) -> str:
    parts = name.split(".")
    return name if len(parts) <= 2 else ".".join(parts[:2]) + ".*"


def _shape(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"


