"""Register the typed roots with Hydra's ConfigStore (``train_schema``, ``evaluate_schema``).

Each root YAML lists its schema first in its defaults, so every YAML group and command-line
override is merged into these dataclasses: an unknown key or a wrong type fails at start-up
naming the key (Hydra/OmegaConf), and the applications' ``validate`` checks relations.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from protperf.app import evaluate
from protperf.app.config import TrainConfig


def register_configs() -> None:
    """Store the schemas (idempotent; call before ``hydra.main`` / ``compose``)."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    evaluate.register_configs()
