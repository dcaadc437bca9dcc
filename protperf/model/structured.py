"""Turn plain dicts (from YAML or a checkpoint) into validated config dataclasses."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from protperf.model.config import ConfigError

T = TypeVar("T")


def to_dataclass(schema: type[T], values: dict[str, Any] | DictConfig | T, prefix: str) -> T:
    """Merge ``values`` into the dataclass ``schema``: unknown keys and wrong types raise
    :class:`ConfigError` naming ``prefix.key``; ``__post_init__`` checks run on the result."""
    if isinstance(values, schema):
        return values
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        where = f"{prefix}.{key}" if key else prefix
        reason = str(error).splitlines()[0]
        raise ConfigError(f"invalid {where}: {reason}") from None
    except ValueError as error:
        message = str(error)
        if re.match(r"^[A-Za-z_]\w*\.\w", message):  # "attention.kind='x' ..." -> full key
            raise ConfigError(f"{prefix}.{message}") from None
        raise ConfigError(f"invalid {prefix}: {message}") from None


def to_plain(values: Any) -> Any:
    """A dataclass / DictConfig as nested plain dicts and lists (checkpoint-safe primitives)."""
    if isinstance(values, DictConfig):
        return OmegaConf.to_container(values, resolve=True)
    return OmegaConf.to_container(OmegaConf.structured(values), resolve=True)
