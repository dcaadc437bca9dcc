"""The one checkpoint writer: a network + its config as an ordinary protperf checkpoint.

The file is what protperf's training writes with ``weights_only``: a dict whose
``state_dict`` holds the network's weights under ``model.*`` (the LightningModule's names) and
whose ``hyper_parameters`` hold the ``model`` / ``task`` / ``optim`` configs, the seed and the
alphabet, so every command that takes a checkpoint (evaluate, analyze, embed, score,
``train init_from=``, :func:`protperf.checkpoint.load.load_model`) takes it unchanged. It
carries the sha256 of each weight (:mod:`.integrity`) and is written through
:func:`~protperf.checkpoint.atomic.atomic_path` (complete or absent). No Lightning is
involved: the weights are checked against a model built from the config on the ``meta``
device (names and shapes, no memory), and the written file is read back (memory-mapped) and
checked against the hash.

Used by ``protperf-import`` (:func:`write_imported`), the planted controls of
:mod:`protperf.analysis.controls` and ``protperf-evaluate``'s fine-tuned models.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from protperf import __version__
from protperf.checkpoint.atomic import atomic_path, check_writable
from protperf.checkpoint.imported import ImportedModel
from protperf.checkpoint.integrity import INTEGRITY_KEY, check_finite, integrity_record
from protperf.checkpoint.load import MODULE_PREFIX, load_weights_only
from protperf.data.alphabet import ALPHABET
from protperf.errors import CheckpointError, CheckpointWriteError, PretrainedSourceError
from protperf.model.config import ModelConfig, OptimConfig, TaskConfig
from protperf.model.transformer import ProteinLanguageModel
from protperf.structured import to_dataclass, to_plain

#: Checkpoint key with the import's provenance (source, kind, tokens and tensors left out).
IMPORT_KEY = "protperf_import"


def network_state(model: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The CPU tensors of a network or of a state dict, by the network's names."""
    state = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    return {name: tensor.detach().cpu() for name, tensor in state.items()}


def check_fits(state: Mapping[str, torch.Tensor], config: ModelConfig, task: TaskConfig,
               source: str) -> None:
    """Every tensor of a network built from ``config`` is in ``state`` with its shape, and
    ``state`` holds nothing else (a ``meta``-device model: no memory, no random draws)."""
    with torch.device("meta"):
        expected = ProteinLanguageModel(config, causal=task.causal).state_dict()
    for name, tensor in state.items():
        if name not in expected:
            raise PretrainedSourceError(f"{source}: tensor {name!r} is not part of the model "
                                        "its config describes")
        if expected[name].shape != tensor.shape:
            raise PretrainedSourceError(
                f"{source}: tensor for {name!r} has shape {tuple(tensor.shape)}, protperf's "
                f"needs {tuple(expected[name].shape)}")
    missing = [name for name in expected if name not in state]
    if missing:
        raise PretrainedSourceError(f"{source}: nothing to import into {missing[0]!r}")


def hyper_parameters(config: ModelConfig, task: TaskConfig, optim: OptimConfig | None = None,
                     seed: int = 0) -> dict[str, Any]:
    """What :class:`protperf.model.lightning.ProteinLMModule` stores as its hyper-parameters
    (plain primitives)."""
    return {"model": to_plain(config), "task": to_plain(task),
            "optim": to_plain(optim or OptimConfig()), "seed": int(seed),
            "alphabet": list(ALPHABET.tokens), "protperf_version": __version__}


def checkpoint_dict(state: Mapping[str, torch.Tensor], hparams: Mapping[str, Any],
                    global_step: int = 0, extra: Mapping[str, Any] | None = None
                    ) -> dict[str, Any]:
    """The checkpoint content (see the module docstring)."""
    module_state = {MODULE_PREFIX + name: tensor for name, tensor in state.items()}
    return {
        "epoch": 0,
        "global_step": int(global_step),
        "pytorch-lightning_version": _lightning_version(),
        "state_dict": module_state,
        "hparams_name": "kwargs",
        "hyper_parameters": dict(hparams),
        INTEGRITY_KEY: integrity_record(module_state),
        **(extra or {}),
    }


def _lightning_version() -> str:
    """The installed Lightning's version (as Lightning records it), without importing it."""
    try:
        return importlib.metadata.version("lightning")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def write_checkpoint(
    model: nn.Module | Mapping[str, torch.Tensor],
    config: ModelConfig | Mapping[str, Any],
    out: str | Path,
    *,
    task: TaskConfig | Mapping[str, Any] | None = None,
    optim: OptimConfig | Mapping[str, Any] | None = None,
    seed: int = 0,
    global_step: int = 0,
    extra: Mapping[str, Any] | None = None,
    overwrite: bool = True,
    source: str | None = None,
) -> Path:
    """Write the network ``model`` (or its state dict) built from ``config`` as a checkpoint
    at ``out`` (see the module docstring); ``task`` defaults to a masked LM. ``extra``: more
    top-level keys. Refuses non-finite weights and, unless ``overwrite``, an existing ``out``.
    Nothing is left at ``out`` on failure (a one-line ``CheckpointWriteError`` for a full
    disk or a read-only folder)."""
    out = Path(out)
    source = source or str(out)
    config = to_dataclass(ModelConfig, config, "model")
    task = to_dataclass(TaskConfig, task or {"objective": "mlm"}, "task")
    optim = to_dataclass(OptimConfig, optim or {}, "optim")
    if out.is_dir():
        raise CheckpointWriteError(f"--out {out} is a directory; give a checkpoint file name")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (use --force to replace it)")
    state = network_state(model)
    check_fits(state, config, task, source)
    check_finite(state, source, "not writing it")
    content = checkpoint_dict(state, hyper_parameters(config, task, optim, seed), global_step,
                              extra)
    size = sum(t.numel() * t.element_size() for t in state.values())
    check_writable(out.parent, "checkpoint", need_bytes=size)
    with atomic_path(out, "checkpoint") as partial:
        torch.save(content, partial)
        verify_written(partial, content, out)
    return out


def verify_written(path: Path, content: Mapping[str, Any], out: Path) -> None:
    """Read ``path`` back (memory-mapped) and compare its weights' hash with ``content``'s."""
    try:
        written = load_weights_only(path, f"checkpoint {out}", "", mmap=True)
        if integrity_record(written["state_dict"]) != content[INTEGRITY_KEY]:
            raise CheckpointError(f"checkpoint {out} does not read back as written")
    except CheckpointError as error:
        raise CheckpointWriteError(f"cannot write checkpoint {out}: {error}") from None


def write_imported(imported: ImportedModel, out: Path, overwrite: bool = False) -> Path:
    """Write an imported model (``protperf-import``) with its provenance under
    :data:`IMPORT_KEY`."""
    provenance = {
        "source": imported.source,
        "kind": imported.kind,
        "dropped_tokens": list(imported.dropped_tokens),
        "unpredicted_tokens": list(imported.unpredicted_tokens),
        "ignored_tensors": list(imported.ignored),
    }
    return write_checkpoint(imported.state_dict, imported.config, out, overwrite=overwrite,
                            extra={IMPORT_KEY: provenance}, source=imported.source)
