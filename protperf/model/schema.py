"""Register the typed configs with Hydra's ConfigStore (``train_schema``, ``evaluate_schema``).

``conf/train.yaml`` lists ``train_schema`` first in its defaults, so every YAML group and
command-line override is merged into these dataclasses: an unknown key or a wrong type fails
at start-up naming the key (Hydra/OmegaConf), and :func:`protperf.model.config.validate`
checks the relations between keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from protperf.model.config import TrainConfig

try:  # the data pipeline's typed config; untyped only if the data package is absent
    from protperf.data.config import DataConfig
except ImportError:  # pragma: no cover - only while the data branch is missing
    DataConfig = None  # type: ignore[assignment,misc]


if DataConfig is not None:

    @dataclass
    class TrainSchema(TrainConfig):
        data: DataConfig = field(default_factory=DataConfig)  # type: ignore[valid-type]

else:  # pragma: no cover

    @dataclass
    class TrainSchema(TrainConfig):
        data: Any = None


def register_configs() -> None:
    """Store the schemas (idempotent; call before ``hydra.main`` / ``compose``)."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainSchema)
    from protperf.model.evaluate import EvaluateSchema

    store.store(name="evaluate_schema", node=EvaluateSchema)
