"""``load_model(anything)``: the network of any source protperf reads, in memory.

    from protperf.pretrained.load import load_model
    model = load_model("facebook/esm2_t6_8M_UR50D")                 # a Hugging Face repo id
    model = load_model("esm2_t6_8M_UR50D")                          # a fair-esm name
    model = load_model("last.ckpt")                                  # protperf's own
    performer = load_model("esm2_t6_8M_UR50D",
                           attention={"kind": "favor_relu", "num_features": 256})

Sources: a protperf checkpoint (``*.ckpt``) or export directory, read by
:func:`protperf.checkpoint.load.load_model`; an HF ``EsmForMaskedLM`` / BERT-family directory,
a fair-esm ESM-2 file, or the name of either (:mod:`protperf.pretrained.hub`), converted in
memory as ``protperf-import`` converts them (nothing is written). Overrides are the model keys
that keep parameter shapes (``attention={...}``, ``dropout=...``) and apply to every kind;
random features a source does not hold are drawn from the seed an import would record (0), so
``load_model(SOURCE, **overrides)`` is the network of ``protperf-import SOURCE`` loaded with the
same overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from protperf import __version__
from protperf.checkpoint import load as checkpoint_load
from protperf.checkpoint.export_dir import CONFIG_FILE
from protperf.checkpoint.export_dir import FORMAT as EXPORT_FORMAT
from protperf.checkpoint.imported import ImportedModel
from protperf.checkpoint.load import SavedModel, build_model
from protperf.data.alphabet import ALPHABET
from protperf.model.config import OptimConfig, TaskConfig
from protperf.model.transformer import ProteinLanguageModel
from protperf.pretrained.hf import read_config
from protperf.pretrained.hub import resolve_source
from protperf.pretrained.importer import convert_local
from protperf.structured import to_plain

#: The seed an imported checkpoint records (ProteinLMModule's default).
IMPORT_SEED = 0


def load_model(source: str | Path, *, revision: str | None = None,
               device: str | torch.device = "cpu", vocab: str | Path | None = None,
               **overrides: Any) -> ProteinLanguageModel:
    """The :class:`ProteinLanguageModel` of ``source`` in eval mode on ``device``.

    revision: the Hub revision of a repo id; vocab: the vocab.txt of an HF directory that
    keeps it elsewhere; overrides: model keys that keep parameter shapes, e.g.
    ``attention={"kind": "favor_softmax", "num_features": 256}``.
    Raises FileNotFoundError, PretrainedSourceError / CheckpointError /
    CheckpointMismatchError (one line naming the file, key or tensor)."""
    path = resolve_source(source, revision)
    if is_protperf_model(path):
        return checkpoint_load.load_model(path, device, model_overrides=overrides or None)
    imported = convert_local(path, None if vocab is None else Path(vocab))
    return build_model(saved_model(imported), overrides or None).eval().to(device)


def is_protperf_model(path: Path) -> bool:
    """A protperf ``.ckpt`` file or export directory (anything else is a foreign format)."""
    if path.is_dir():
        return (path / CONFIG_FILE).is_file() and read_config(path).get("format") == EXPORT_FORMAT
    return path.suffix == ".ckpt"


def saved_model(imported: ImportedModel) -> SavedModel:
    """What ``protperf-import`` would write for ``imported`` (the hyper-parameters of a masked-LM
    ProteinLMModule), without writing it."""
    hyper_parameters = {
        "model": to_plain(imported.config), "task": to_plain(TaskConfig(objective="mlm")),
        "optim": to_plain(OptimConfig()), "seed": IMPORT_SEED,
        "alphabet": list(ALPHABET.tokens), "protperf_version": __version__,
    }
    return SavedModel(hyper_parameters, imported.state_dict, f"{imported.kind} {imported.source}")
