"""The one registry of the commands' typed roots: ``<command>_schema`` in Hydra's ConfigStore.

Each root YAML (``protperf/conf/<command>.yaml``) lists its schema first in its defaults, so
every YAML group and command-line override is merged into these dataclasses: a wrong type fails
at start-up naming the key (Hydra/OmegaConf), and :func:`load_config` turns a composed config
into the validated dataclass, refusing keys the schema does not have (also those added with
``+key=value``, which Hydra lets into a typed node) with the nearest valid key.

A schema is a class or ``"module:Class"``, imported only when its command runs, so that a
command's start-up imports no other command's stack (``analyze`` needs the analysis package).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from protperf.cli.config import (
    EmbedConfig,
    EvaluateConfig,
    GenerateConfig,
    ScoreConfig,
    TrainConfig,
)
from protperf.errors import ConfigError, config_key
from protperf.runtime.run_dir import register_resolvers
from protperf.structured import to_dataclass

#: command (= root YAML name) -> its typed root (a class, or "module:Class" imported on use)
SCHEMAS: dict[str, type | str] = {
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "analyze": "protperf.analysis.config:AnalyzeConfig",
    "embed": EmbedConfig,
    "score": ScoreConfig,
    "generate": GenerateConfig,
    "convert": "protperf.app.convert_config:ConvertConfig",
}


def schema(command: str) -> type:
    """The typed root of ``command``."""
    found = SCHEMAS[command]
    if isinstance(found, str):
        module, _, name = found.partition(":")
        found = getattr(importlib.import_module(module), name)
    return found


def register_schemas(*commands: str) -> None:
    """Store the ``<command>_schema`` of ``commands`` (default: all) and the
    ``${protperf_unique_dir:...}`` resolver of ``conf/hydra/default.yaml`` (idempotent; before
    ``hydra.main`` / ``compose``)."""
    register_resolvers()
    store = ConfigStore.instance()
    for name in commands or SCHEMAS:
        store.store(name=f"{name}_schema", node=schema(name))


def unknown_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """``key (did you mean nearest?)`` for every key of ``cfg`` that its typed node's dataclass
    does not declare (dict-typed fields such as ``logger`` / ``callbacks`` take any key)."""
    kind = OmegaConf.get_type(cfg)
    if not dataclasses.is_dataclass(kind):
        return []
    fields = [field.name for field in dataclasses.fields(kind)]
    found = []
    for key in cfg.keys():
        full = config_key(prefix, str(key))
        if key not in fields:
            near = difflib.get_close_matches(str(key), fields, n=1)
            hint = (f"did you mean {config_key(prefix, near[0])}?" if near
                    else f"valid keys: {', '.join(config_key(prefix, f) for f in fields)}")
            found.append(f"{full} ({hint})")
        elif (not OmegaConf.is_missing(cfg, key) and not OmegaConf.is_interpolation(cfg, key)
              and isinstance(cfg[key], DictConfig)):
            found.extend(unknown_keys(cfg[key], full))
    return found


def load_config(command: str, cfg: DictConfig | Any) -> Any:
    """A composed config (or an already typed one) -> the validated root of ``command``.

    Raises :class:`ConfigError` naming the first unknown key (with the nearest valid one) or
    the full key of an invalid value (each dataclass's ``validate(prefix)``).
    """
    if isinstance(cfg, DictConfig):
        unknown = unknown_keys(cfg)
        if unknown:
            raise ConfigError(f"unknown config key {unknown[0]}")
    return to_dataclass(schema(command), cfg)
