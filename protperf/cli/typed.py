"""Which keys the user typed: the command line's overrides, as Hydra recorded them.

A checkpoint's settings apply unless the user typed another value (``train init_from=`` takes
the architecture from the checkpoint; ``convert`` refuses masked-LM data settings for a causal
source): a typed key counts, a default of the YAML tree does not. A group choice typed on the
command line (``model=transformer``) counts as typing every key its YAML file sets.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from protperf.conf import CONF_DIR


def command_line_overrides() -> list[str] | None:
    """This Hydra job's overrides (``["model.dim=64", ...]``), None outside a Hydra run."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return list(HydraConfig.get().overrides.task)


def typed_keys(section: str, overrides: list[str] | None = None) -> list[str] | None:
    """The keys under ``section`` that ``overrides`` (default: the command line) set, in
    full (``model.attention.kind``); None when not known (outside a Hydra run)."""
    overrides = command_line_overrides() if overrides is None else overrides
    if overrides is None:
        return None
    found: list[str] = []
    for override in overrides:
        key, _, value = override.lstrip("+~").removeprefix("override ").partition("=")
        if key == section:  # a group choice: every key of its YAML file
            path = CONF_DIR / section / f"{value}.yaml"
            if path.is_file():
                found += [f"{section}.{k}" for k in flat_keys(OmegaConf.to_container(
                    OmegaConf.load(path)) or {}) if k != "defaults"]
        elif key.startswith(f"{section}."):
            found.append(key)
    return list(dict.fromkeys(found))


def flat_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the leaves of nested dicts."""
    if not isinstance(node, dict):
        return [prefix]
    return [key for name, child in node.items()
            for key in flat_keys(child, f"{prefix}.{name}" if prefix else str(name))]


def typed_values(config: Any, section: str, keys: list[str]) -> dict[str, Any]:
    """The values ``config`` (a dataclass or DictConfig) holds at ``keys`` (full keys under
    ``section``), as nested plain dicts relative to ``section``."""
    node = OmegaConf.structured(config)
    out: dict[str, Any] = {}
    for key in keys:
        relative = key.removeprefix(f"{section}.")
        value = OmegaConf.select(node, relative)
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        target = out
        *parents, leaf = relative.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return out
