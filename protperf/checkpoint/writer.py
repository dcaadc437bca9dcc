"""An imported model written as an ordinary protperf checkpoint.

The file is what protperf's training writes with ``weights_only``: a Lightning checkpoint
whose ``state_dict`` holds the :class:`ProteinLMModule`'s weights (``model.*``) and whose
``hyper_parameters`` hold the model / task / optim configs and the alphabet, so every command
that takes a checkpoint (evaluate, analyze, embed, score, ``train init_from=``,
``protperf.inference.load_model``) takes it unchanged. ``protperf_import`` records where it
came from and what was left out. The file appears only complete (written beside OUT, checked
by loading it back, then renamed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning
import torch

from protperf.checkpoint.imported import ImportedModel
from protperf.checkpoint.module import load_module
from protperf.errors import PretrainedSourceError
from protperf.model.config import TaskConfig
from protperf.model.lightning import ProteinLMModule

#: Checkpoint key with the import's provenance (source, kind, tokens and tensors left out).
IMPORT_KEY = "protperf_import"


def build_module(imported: ImportedModel) -> ProteinLMModule:
    """A masked-LM :class:`ProteinLMModule` holding the imported weights (eval mode)."""
    module = ProteinLMModule(model=imported.config, task=TaskConfig(objective="mlm"))
    expected = module.model.state_dict()
    for name, tensor in imported.state_dict.items():
        if name not in expected:
            raise PretrainedSourceError(f"internal: no protperf tensor {name!r} to import into")
        if expected[name].shape != tensor.shape:
            raise PretrainedSourceError(
                f"{imported.source}: tensor for {name!r} has shape {tuple(tensor.shape)}, "
                f"protperf's needs {tuple(expected[name].shape)}"
            )
    missing = sorted(set(expected) - set(imported.state_dict))
    if missing:
        raise PretrainedSourceError(f"{imported.source}: nothing to import into {missing[0]!r}")
    module.model.load_state_dict(imported.state_dict, strict=True)
    return module.eval()


def checkpoint_dict(module: ProteinLMModule, imported: ImportedModel) -> dict[str, Any]:
    """The checkpoint content (see the module docstring)."""
    return {
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": lightning.__version__,
        "state_dict": module.state_dict(),
        "hparams_name": "kwargs",
        "hyper_parameters": dict(module.hparams),
        IMPORT_KEY: {
            "source": imported.source,
            "kind": imported.kind,
            "dropped_tokens": list(imported.dropped_tokens),
            "unpredicted_tokens": list(imported.unpredicted_tokens),
            "ignored_tensors": list(imported.ignored),
        },
    }


def write_checkpoint(imported: ImportedModel, out: Path, overwrite: bool = False) -> None:
    """Write ``imported`` to ``out`` atomically; nothing is left at ``out`` on failure."""
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (use --force to replace it)")
    if out.is_dir():
        raise PretrainedSourceError(f"--out {out} is a directory; give a checkpoint file name")
    module = build_module(imported)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        torch.save(checkpoint_dict(module, imported), partial)
        reloaded = load_module(partial).model  # every command loads through this
        ids = torch.arange(5, 25)[None]
        with torch.no_grad():
            if not torch.equal(reloaded.eval()(ids), module.model(ids)):
                raise PretrainedSourceError(f"{partial} does not reload to the same model")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
