"""Pretrained Transformer -> Performer: zero-shot conversion, fine-tuning and attention
transfer, and how well each recovers the model's masked-LM quality.

``antibodies``: the bundled antibody variable-domain sets (and the held-out set of another
origin); ``antiberty``: AntiBERTy's weights from the optional ``transfer`` extra;
``evaluation``: masked-LM accuracy and perplexity on fixed masks; ``conversion``: the same
weights under another attention and the per-layer attention inputs/outputs of a teacher;
``finetune``: the losses of a conversion (attention transfer, its end-to-end term, the
masked-LM polish) and what trains; ``headmap``: per-head maps that fold into W_q / W_k;
``benchmark``: the tables of ``scripts/benchmark_transfer.py``; ``converter``: :func:`convert`,
an exact model -> a Performer checkpoint (``protperf-convert``), with its Lightning glue in
``module``, its frozen exact ``teacher``, its input ``checks`` and its ``settings``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["convert"]


def __getattr__(name: str) -> Any:
    """``protperf.transfer.convert`` without importing Lightning with the package."""
    if name == "convert":
        from protperf.transfer.converter import convert

        return convert
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
