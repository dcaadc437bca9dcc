"""Unknown keys (also ``+key`` additions Hydra lets into a typed node) are refused with the
nearest valid key, and every config dataclass names the full key of a bad value itself."""

from __future__ import annotations

import pytest

from protperf.cli.compose import compose_config
from protperf.cli.registry import load_config
from protperf.data.config import DataConfig
from protperf.errors import ConfigError
from protperf.model.config import ModelConfig, OptimConfig, TaskConfig
from tests.cli.helpers import error_line, run_command


def _load(command: str, overrides: list[str]):
    return load_config(command, compose_config(command, overrides))


@pytest.mark.parametrize(("command", "overrides", "message"), [
    ("train", ["+trainer.max_step=3"],
     "unknown config key trainer.max_step (did you mean trainer.max_steps?)"),
    ("train", ["+model.attention.num_feature=8"],
     "unknown config key model.attention.num_feature (did you mean "
     "model.attention.num_features?)"),
    ("train", ["+data.prepare.min_residue=2"],
     "unknown config key data.prepare.min_residue (did you mean data.prepare.min_residues?)"),
    ("evaluate", ["checkpoints=[a.ckpt]", "+finetune.step=2"],
     "unknown config key finetune.step (did you mean finetune.steps?)"),
    ("embed", ["checkpoint=a.ckpt", "output_dir=o", "+layer=[1]"],
     "unknown config key layer (did you mean layers?)"),
])
def test_unknown_key_names_the_nearest(command, overrides, message):
    if command == "train":
        overrides = [*overrides, "output_dir=unused"]
    with pytest.raises(ConfigError) as error:
        _load(command, overrides)
    assert str(error.value) == message


def test_unknown_key_without_a_near_one_lists_the_valid_keys():
    with pytest.raises(ConfigError, match=r"^unknown config key task.zzz \(valid keys: "
                                          r"task.objective\)$"):
        _load("train", ["+task.zzz=1", "output_dir=unused"])


def test_dict_sections_take_any_key():
    config = _load("train", ["+logger.extra={_target_: builtins.dict}", "output_dir=unused"])
    assert "extra" in config.logger


def test_plus_key_typo_as_a_command(tmp_path):
    """Hydra's own hint for ``trainer.max_step=3`` is ``+trainer.max_step=3``, which used to
    be accepted silently (the default 200 steps ran)."""
    result = run_command("train.py", ["+trainer.max_step=3", "hydra.run.dir=run"], tmp_path)
    assert error_line(result) == (
        "error: unknown config key trainer.max_step (did you mean trainer.max_steps?)")


@pytest.mark.parametrize(("config", "prefix", "message"), [
    (ModelConfig(num_heads=3), "m", "m.num_heads=3 does not divide m.dim=128"),
    (ModelConfig(dropout=1.0), "", "dropout=1.0 must be in [0, 1)"),
    (ModelConfig(attention=ModelConfig().attention.__class__(kind="x")), "enc",
     "enc.attention.kind='x' is not one of exact, favor_softmax, favor_relu, identity"),
    (TaskConfig(objective="seq"), "task", "task.objective='seq' is not one of mlm, clm"),
    (OptimConfig(lr=0), "opt", "opt.lr=0 must be positive"),
    (DataConfig(batch_size=0), "d", "d.batch_size must be >= 1, got 0"),
    (DataConfig(prepare=DataConfig().prepare.__class__(valid_fraction=1.5)), "data",
     "data.prepare.valid_fraction must be in [0, 1), got 1.5"),
])
def test_each_dataclass_names_the_full_key(config, prefix, message):
    with pytest.raises(ConfigError) as error:
        config.validate(prefix)
    assert str(error.value) == message


def test_attention_kind_is_checked_once(monkeypatch):
    """The attention kind is checked by AttentionConfig.validate alone (ModelConfig delegates)."""
    from protperf.attention.config import AttentionConfig

    calls = []
    original = AttentionConfig.validate
    monkeypatch.setattr(AttentionConfig, "validate",
                        lambda self, prefix="model.attention": calls.append(prefix)
                        or original(self, prefix))
    with pytest.raises(ConfigError, match=r"^model.attention.kind='bogus' is not one of"):
        _load("train", ["model.attention.kind=bogus", "output_dir=unused"])
    assert calls == ["model.attention"]


@pytest.mark.parametrize(("overrides", "message"), [
    (["split=train"], "split='train' is not one of test, val"),
    (["data.batch_size=0"], "data.batch_size must be >= 1, got 0"),
    (["finetune.steps=-1"], "finetune.steps=-1 must be >= 0"),
])
def test_evaluate_config_is_checked_at_start(overrides, message):
    with pytest.raises(ConfigError) as error:
        _load("evaluate", ["checkpoints=[a.ckpt]", "output_dir=o", *overrides])
    assert str(error.value) == message
