"""Plain dicts / Hydra configs -> validated config dataclasses, with errors naming the key.

The one place where OmegaConf and dataclass errors become :class:`ConfigError`: the training,
evaluation and analysis applications and checkpoint loading all go through :func:`to_dataclass`.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from protperf.errors import ConfigError

T = TypeVar("T")

# Where a nested dataclass sits in the configs, for messages it words relative to itself
# ("attention.kind=..." raised inside ModelConfig is ``model.attention.kind`` at the root).
NESTED_PREFIXES = {"attention": "model.attention"}


def _full_key(prefix: str, message: str) -> str:
    """The message of a ``__post_init__`` check with its key made absolute."""
    head = message.split(".", 1)[0]
    if not re.match(r"^[A-Za-z_]\w*\.\w", message):
        return f"invalid {prefix}: {message}" if prefix else message
    if prefix:
        return f"{prefix}.{message}"
    if head in NESTED_PREFIXES:
        return NESTED_PREFIXES[head] + message[len(head):]
    return message


def to_dataclass(schema: type[T], values: dict[str, Any] | DictConfig | T, prefix: str = "") -> T:
    """Merge ``values`` into the dataclass ``schema`` and run its ``__post_init__`` checks.

    Missing mandatory values (``???``), unknown keys and wrong types raise
    :class:`ConfigError` naming ``prefix.key``. ``prefix`` is empty for a root config.
    """
    if isinstance(values, schema):
        return values
    if isinstance(values, DictConfig):
        missing = sorted(OmegaConf.missing_keys(values))
        if missing:
            names = [f"{prefix}.{m}" if prefix else m for m in missing]
            raise ConfigError(
                f"missing mandatory value(s): {', '.join(names)} (set e.g. {names[0]}=...)"
            )
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or ""
        where = ".".join(part for part in (prefix, key) if part)
        reason = str(error).splitlines()[0]
        raise ConfigError(f"invalid {where or 'config'}: {reason}") from None
    except ValueError as error:  # a dataclass __post_init__ check
        raise ConfigError(_full_key(prefix, str(error))) from None


def to_plain(values: Any) -> Any:
    """A dataclass / DictConfig as nested plain dicts and lists (checkpoint-safe primitives)."""
    if isinstance(values, DictConfig):
        return OmegaConf.to_container(values, resolve=True)
    return OmegaConf.to_container(OmegaConf.structured(values), resolve=True)
