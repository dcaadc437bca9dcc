"""Plain dicts / Hydra configs -> validated config dataclasses, with errors naming the key.

The one place where OmegaConf errors become :class:`ConfigError`: the commands and checkpoint
loading all go through :func:`to_dataclass`, which then runs the dataclass's own
``validate(prefix)`` (each config dataclass raises ConfigError with the full key itself).
"""

from __future__ import annotations

from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from protperf.errors import ConfigError

T = TypeVar("T")


def to_dataclass(schema: type[T], values: dict[str, Any] | DictConfig | T, prefix: str = "") -> T:
    """Merge ``values`` into the dataclass ``schema`` and run its ``validate(prefix)`` checks.

    Missing mandatory values (``???``), unknown keys and wrong types raise
    :class:`ConfigError` naming ``prefix.key``; ``prefix`` (empty for a root config) is where
    ``schema`` sits in the command's config, and its ``validate`` names full keys itself.
    """
    config = values if isinstance(values, schema) else _merge(schema, values, prefix)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate(prefix)
    return config


def _merge(schema: type[T], values: dict[str, Any] | DictConfig, prefix: str) -> T:
    if isinstance(values, DictConfig):
        missing = sorted(OmegaConf.missing_keys(values))
        if missing:
            names = [f"{prefix}.{m}" if prefix else m for m in missing]
            raise ConfigError(
                f"missing mandatory value(s): {', '.join(names)} (set e.g. {names[0]}=...)"
            )
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or ""
        where = ".".join(part for part in (prefix, key) if part)
        reason = str(error).splitlines()[0]
        raise ConfigError(f"invalid {where or 'config'}: {reason}") from None


def to_plain(values: Any) -> Any:
    """A dataclass / DictConfig as nested plain dicts and lists (checkpoint-safe primitives)."""
    if isinstance(values, DictConfig):
        return OmegaConf.to_container(values, resolve=True)
    return OmegaConf.to_container(OmegaConf.structured(values), resolve=True)
