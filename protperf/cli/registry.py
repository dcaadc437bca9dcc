"""The one registry of the commands' typed roots: ``<command>_schema`` in Hydra's ConfigStore.

Each root YAML (``protperf/conf/<command>.yaml``) lists its schema first in its defaults, so
every YAML group and command-line override is merged into these dataclasses: an unknown key or
a wrong type fails at start-up naming the key (Hydra/OmegaConf), and :func:`load_config`
turns a composed config into the validated dataclass.
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from protperf.analysis.pipeline import AnalyzeConfig
from protperf.cli.config import (
    EmbedConfig,
    EvaluateConfig,
    GenerateConfig,
    ScoreConfig,
    TrainConfig,
)
from protperf.errors import ConfigError
from protperf.runtime.run_dir import register_resolvers
from protperf.structured import to_dataclass

#: command (= root YAML name) -> its typed root
SCHEMAS: dict[str, type] = {
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "analyze": AnalyzeConfig,
    "embed": EmbedConfig,
    "score": ScoreConfig,
    "generate": GenerateConfig,
}


def register_schemas() -> None:
    """Store every ``<command>_schema`` and the ``${protperf_unique_dir:...}`` resolver of
    ``conf/hydra/default.yaml`` (idempotent; before ``hydra.main`` / ``compose``)."""
    register_resolvers()
    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(name=f"{name}_schema", node=schema)


def load_config(command: str, cfg: DictConfig | Any) -> Any:
    """A composed config (or an already typed one) -> the validated root of ``command``."""
    config = to_dataclass(SCHEMAS[command], cfg)
    validate = getattr(config, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as error:  # library configs (data, analysis) raise ValueError
            raise ConfigError(str(error)) from None
    return config
