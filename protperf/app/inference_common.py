"""What the embed / score / generate apps share: their console entry points (config and input
errors are reported in one line by :mod:`protperf.app.cli`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from protperf.app.cli import hydra_command, report_user_errors
from protperf.structured import to_dataclass


def register_schema(config_name: str, schema: type) -> None:
    """Store ``<config_name>_schema`` (what ``conf/<config_name>.yaml`` names first)."""
    ConfigStore.instance().store(name=f"{config_name}_schema", node=schema)


def run_app(run: Callable[[Any], Any], schema: type, cfg: DictConfig) -> Any:
    """``run(config object)`` with every user error reported in one line (exit status 2)."""
    return report_user_errors(lambda c: run(to_dataclass(schema, c)))(cfg)


def inference_command(config_name: str, run: Callable[[Any], Any],
                      schema: type) -> Callable[[], Any]:
    """The console entry point of ``run`` over ``protperf/conf/<config_name>.yaml``."""

    def task(cfg: DictConfig) -> Any:
        return run(to_dataclass(schema, cfg))

    task.__name__ = task.__qualname__ = config_name
    return hydra_command(config_name, lambda: register_schema(config_name, schema))(task)

