"""Compose a command's config in Python (notebooks, tests) as its command would see it."""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from protperf.cli.registry import register_schemas
from protperf.conf import CONF_DIR


def compose_config(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """``protperf/conf/<config_name>.yaml`` + command-line style ``overrides``, e.g.
    ``compose_config("train", ["model=performer_softmax", "output_dir=runs/a"])``.

    Keys that read Hydra's runtime (``output_dir``) must be given in ``overrides``.
    """
    register_schemas()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(config_name, overrides=list(overrides))
