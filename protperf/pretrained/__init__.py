"""Pretrained protein Transformers (ESM-2, BERT-family masked LMs) as protperf checkpoints.

    from protperf.pretrained import import_pretrained
    import_pretrained("esm2_t6_8M_UR50D.pt", "esm2_t6.ckpt")

The libraries of the ``pretrained`` extra (safetensors, fair-esm for its alphabet) are imported
only when a source needs them. See docs/pretrained.md.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it, imported on first use (``import
#: protperf.pretrained.sources`` stays light: no torch).
_LAZY = {"ImportedModel": "protperf.checkpoint.imported",
         "convert": "protperf.pretrained.importer",
         "import_pretrained": "protperf.pretrained.importer"}

__all__ = ["ImportedModel", "convert", "import_pretrained"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
