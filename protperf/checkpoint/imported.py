"""What an importer of a foreign format hands to the checkpoint writer."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from protperf.model.config import ModelConfig


@dataclass
class ImportedModel:
    """A source model converted to protperf: its architecture, its weights under
    :class:`protperf.model.transformer.ProteinLanguageModel`'s names, and what was left out.

    kind: ``fair-esm``, ``hf-esm`` or ``hf-bert``.  source: the file or directory.
    dropped_tokens: source tokens protperf has no id for.  unpredicted_tokens: protperf tokens
    the source lacks (never predicted).  ignored: source tensors not used (grouped names).
    """

    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    kind: str
    source: str
    dropped_tokens: list[str] = field(default_factory=list)
    unpredicted_tokens: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
