"""Settings that may differ from a checkpoint's: "these weights, other attention".

One schema for every place that loads weights into another configuration: evaluation
(``model.*`` of ``conf/evaluate.yaml``), analysis (``model.*`` of ``conf/analyze.yaml``) and
:func:`protperf.checkpoint.module.load_module`. Only keys that do not change parameter shapes.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from protperf.attention.config import AttentionConfig

# Every AttentionConfig field, optional: None keeps the checkpoint's value.
AttentionOverrides = dataclasses.make_dataclass(
    "AttentionOverrides",
    [
        (f.name, typing.Optional[hint], field(default=None))  # noqa: UP045 (OmegaConf needs typing.Optional)
        for f in dataclasses.fields(AttentionConfig)
        for hint in [typing.get_type_hints(AttentionConfig)[f.name]]
    ],
)


@dataclass
class ModelOverrides:
    """Model keys that may differ from the checkpoint (they do not change parameter shapes);
    None keeps the checkpoint's value, e.g. ``model.attention.kind=favor_relu`` evaluates or
    analyzes exact-Transformer weights as a Performer."""

    dropout: float | None = None
    attention: AttentionOverrides = field(default_factory=AttentionOverrides)  # type: ignore

    def as_overrides(self) -> dict[str, Any]:
        """The values that are set, as nested plain dicts for ``load_module``."""
        plain = dataclasses.asdict(self)

        def prune(node: Any) -> Any:
            if isinstance(node, dict):
                return {k: prune(v) for k, v in node.items() if v is not None and prune(v) != {}}
            return node

        return prune(plain)
