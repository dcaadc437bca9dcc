"""protperf: protein language modeling with Performers (FAVOR+ linear attention).

The public face (docs/api.md), imported on first use so that ``import protperf`` stays fast
(no torch, no Lightning until a name is used)::

    import protperf
    model = protperf.load_model("last.ckpt")  # a .ckpt, export dir, HF dir / repo id, ESM name
    tokens, mask = protperf.BatchConverter()(["MKTAYIAKQR"])
    logits = model(tokens, attention_mask=mask)         # (1, 12, 30)
    means = protperf.Embedder(model).embed_one("MKTAYIAKQR").mean

Everything else lives in the packages' own modules (``protperf.data``, ``protperf.model``,
``protperf.attention``, ``protperf.inference``, ``protperf.analysis``, ...).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Each public name -> ``"module:attribute"``, the one place it is defined.
PUBLIC: dict[str, str] = {
    # a saved model in, a model out, and back to disk
    "load_model": "protperf.pretrained.load:load_model",
    "import_pretrained": "protperf.pretrained:import_pretrained",
    "export_model": "protperf.checkpoint.export:export_model",
    "convert": "protperf.transfer:convert",
    # training
    "train": "protperf.training:train",
    "compose_config": "protperf.cli.compose:compose_config",
    # the model and its inputs
    "ProteinLanguageModel": "protperf.model.transformer:ProteinLanguageModel",
    "ModelConfig": "protperf.model.config:ModelConfig",
    "AttentionConfig": "protperf.attention.config:AttentionConfig",
    "ALPHABET": "protperf.data.alphabet:ALPHABET",
    "Alphabet": "protperf.data.alphabet:Alphabet",
    "BatchConverter": "protperf.data.batching:BatchConverter",
    # using a model
    "Embedder": "protperf.inference.embed:Embedder",
    "Scorer": "protperf.inference.score:Scorer",
    "Sampler": "protperf.inference.generate:Sampler",
    "SamplingConfig": "protperf.inference.generate:SamplingConfig",
}

__all__ = ["__version__", *PUBLIC]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562) and keep it."""
    if name not in PUBLIC:
        raise AttributeError(f"module 'protperf' has no attribute {name!r}")
    module_name, attribute = PUBLIC[name].split(":")
    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(PUBLIC))

