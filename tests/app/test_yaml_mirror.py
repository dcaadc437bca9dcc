"""Every YAML key exists in its dataclass, and the mirroring YAMLs hold only differences."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from protperf.analysis.config import AnalyzeConfig
from protperf.app.convert_config import ConvertConfig
from protperf.app.evaluate import EvaluateConfig
from protperf.cli.config import TrainConfig, TrainerConfig
from protperf.conf import CONF_DIR
from protperf.data.config import DataConfig
from protperf.model.config import ModelConfig, TaskConfig
from protperf.structured import to_plain

# Config groups whose files are merged into a dataclass (the rest are Hydra _target_ nodes).
GROUP_SCHEMAS = {"data": DataConfig, "model": ModelConfig, "task": TaskConfig,
                 "trainer": TrainerConfig, "experiment": TrainConfig}
ROOT_SCHEMAS = {"train.yaml": TrainConfig, "evaluate.yaml": EvaluateConfig,
                "analyze.yaml": AnalyzeConfig, "convert.yaml": ConvertConfig}
# Files that may restate a default on purpose: experiments spell out the paper's setup.
MAY_RESTATE = {"experiment"}


def yaml_files() -> list[tuple[Path, type]]:
    files = [(CONF_DIR / name, schema) for name, schema in ROOT_SCHEMAS.items()]
    for group, schema in GROUP_SCHEMAS.items():
        files += [(path, schema) for path in sorted((CONF_DIR / group).glob("*.yaml"))]
    return files


def leaves(values: dict, schema: type, prefix: str = "", defaults: object = None
           ) -> list[tuple[str, object, object]]:
    """(key, yaml value, dataclass default) of every leaf; raises KeyError on unknown keys."""
    hints = typing.get_type_hints(schema)
    defaults = schema() if defaults is None else defaults
    out = []
    for key, value in values.items():
        if key == "defaults" or key == "hydra":
            continue
        if key not in hints:
            raise KeyError(f"{prefix}{key} is not a field of {schema.__name__}")
        default = getattr(defaults, key)
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            out += leaves(value, type(default), f"{prefix}{key}.", default)
        elif isinstance(value, dict) and isinstance(default, dict):
            continue  # free-form nodes (logger, callbacks): Hydra _target_ configs
        else:
            out.append((f"{prefix}{key}", value, default))
    return out


@pytest.mark.parametrize(("path", "schema"), yaml_files(), ids=lambda v: getattr(v, "name", ""))
def test_yaml_keys_exist_and_differ_from_the_dataclass(path, schema):
    values = yaml.safe_load(path.read_text()) or {}
    rows = leaves(values, schema)
    if path.parent.name in MAY_RESTATE or path.name in MAY_RESTATE:
        return
    restated = [key for key, value, default in rows
                if value != "???"  # a mandatory value, marked for the reader
                and (value == default or (isinstance(default, tuple) and tuple(value) == default))]
    assert not restated, f"{path.relative_to(CONF_DIR)} restates dataclass defaults: {restated}"


def test_the_default_training_config_is_the_dataclass_default():
    from hydra import compose, initialize_config_dir

    from protperf.cli.registry import load_config, register_schemas

    register_schemas()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        config = load_config("train", compose("train", overrides=["output_dir=unused"]))
    defaults = TrainConfig()
    assert config.model == defaults.model  # the model scripts/train.py trains is ModelConfig()
    for section in ("data", "task", "optim", "trainer"):
        assert to_plain(getattr(config, section)) == to_plain(getattr(defaults, section)), section


def test_the_default_conversion_config_is_the_dataclass_default():
    from protperf.cli.compose import compose_config
    from protperf.cli.registry import load_config

    config = load_config("convert", compose_config(
        "convert", ["checkpoint=a.ckpt", "output=b.ckpt", "output_dir=unused"]))
    defaults = ConvertConfig()
    for section in ("data", "model", "convert", "trainer", "divergence"):
        assert to_plain(getattr(config, section)) == to_plain(getattr(defaults, section)), section
    assert config.trainer.max_steps == 400 and config.data.batch_size == 4  # convert's own


def test_an_unknown_key_is_caught_by_the_mirror_check():
    with pytest.raises(KeyError, match="dimm is not a field of ModelConfig"):
        leaves({"dimm": 3}, ModelConfig)
