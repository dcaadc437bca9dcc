"""Invalid configurations fail at start-up with a message naming the key."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException

from protperf.cli.config import TrainConfig
from protperf.cli.registry import load_config
from protperf.errors import ConfigError
from tests.model.conftest import compose_train


@pytest.mark.parametrize("model", ["transformer", "performer_softmax", "performer_relu"])
@pytest.mark.parametrize("task", ["mlm", "clm"])
def test_every_model_and_task_composes_and_validates(model, task):
    config = load_config("train", compose_train([f"model={model}", f"task={task}"]))
    assert config.model.name == model
    assert config.task.objective == task
    expected_kind = {"transformer": "exact", "performer_softmax": "favor_softmax",
                     "performer_relu": "favor_relu"}[model]
    assert config.model.attention.kind == expected_kind


def test_default_config_is_valid():
    config = load_config("train", compose_train([]))
    assert config.model.attention.kind == "favor_relu"
    assert config.task.objective == "mlm"


def test_concatenated_8192_windows_fit_default_positional_table():
    config = load_config("train", 
        compose_train(["model.max_position=8192", "data.concatenate=true", "data.window=8192"])
    )
    assert config.data.window == 8192


def test_unknown_model_names_the_group():
    with pytest.raises(ConfigCompositionException, match="model/reformer"):
        compose_train(["model=reformer"])


def test_unknown_key_names_the_key():
    with pytest.raises(ConfigCompositionException, match="model.dimm"):
        compose_train(["model.dimm=3"])


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigCompositionException, match="model.dim"):
        compose_train(["model.dim=wide"])


def test_heads_not_dividing_width():
    with pytest.raises(ConfigError, match=r"model.num_heads=3 does not divide model.dim=16"):
        load_config("train", compose_train(["model.num_heads=3"]))


def test_window_longer_than_positional_table():
    with pytest.raises(
        ConfigError,
        match=r"data.window=8192 is longer than the learned positional table "
        r"\(model.max_position=64\)",
    ):
        load_config("train", compose_train(["data.concatenate=true", "data.window=8192"]))


def test_crop_longer_than_positional_table():
    with pytest.raises(ConfigError, match=r"data.max_length=128 is longer .*max_position=64"):
        load_config("train", compose_train(["data.max_length=128"]))


def test_rotary_positions_have_no_length_limit():
    config = load_config("train", compose_train(["model.position=rotary", "data.max_length=128"]))
    assert config.model.position == "rotary"


def test_unknown_attention_kind():
    with pytest.raises(ConfigError, match=r"model.attention.kind='reformer' is not one of"):
        load_config("train", compose_train(["model.attention.kind=reformer"]))


def test_unknown_task():
    with pytest.raises(ConfigCompositionException, match="task/seq2seq"):
        compose_train(["task=seq2seq"])


def test_bad_objective_value():
    with pytest.raises(ConfigError, match=r"task.objective='bid' is not one of mlm, clm"):
        load_config("train", compose_train(["task.objective=bid"]))


def test_bad_schedule():
    with pytest.raises(ConfigError, match=r"optim.schedule='step' is not one of"):
        load_config("train", compose_train(["optim.schedule=step"]))


def test_validate_without_data():
    TrainConfig().validate()  # the defaults are consistent


@pytest.mark.parametrize(
    "experiment",
    ["paper_bid_transformer", "paper_bid_performer_relu", "paper_bid_performer_softmax",
     "paper_uni_transformer", "paper_uni_performer_relu", "paper_concat_performer_relu"],
)
def test_paper_experiments(experiment):
    from hydra import compose, initialize_config_dir

    from tests.model.conftest import CONF

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("train", overrides=[f"experiment={experiment}", "output_dir=o",
                                          "data.path=/data/trembl"])
    config = load_config("train", cfg)
    assert (config.model.num_heads, config.model.dim, config.model.attention.num_features) == (
        8, 512, 256)
    assert (config.optim.lr, tuple(config.optim.betas), config.optim.eps) == (1e-3, (0.9, 0.98),
                                                                              1e-9)
    assert config.optim.weight_decay == 0.1 and config.model.dropout == 0.1
    assert config.trainer.gradient_clip_val == 0.5 and config.trainer.precision == "bf16-mixed"
    if "concat" in experiment:
        assert (config.model.num_layers, config.model.ffn_dim) == (6, 2048)
        assert config.data.concatenate and config.data.window == 8192
    else:
        assert (config.model.num_layers, config.model.ffn_dim) == (36, 1024)
        assert config.data.max_length == 1024 and not config.data.concatenate
    assert config.task.objective == ("clm" if "_uni_" in experiment else "mlm")


def test_missing_mandatory_value_is_named():
    cfg = compose_train([])
    cfg.model.ffn_dim = "???"
    with pytest.raises(ConfigError, match=r"missing mandatory value\(s\): model.ffn_dim"):
        load_config("train", cfg)


@pytest.mark.parametrize("wandb_mode,expected", [(None, "offline"), ("disabled", "disabled")])
def test_loggers_instantiate_and_wandb_is_offline_by_default(monkeypatch, wandb_mode, expected,
                                                             tmp_path):
    from hydra.utils import instantiate
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger

    if wandb_mode is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", wandb_mode)
    cfg = compose_train(["logger=many_loggers"], output_dir=tmp_path)
    loggers = {name: instantiate(node) for name, node in cfg.logger.items()}
    assert isinstance(loggers["csv"], CSVLogger)
    assert isinstance(loggers["tensorboard"], TensorBoardLogger)
    assert isinstance(loggers["wandb"], WandbLogger)
    assert loggers["wandb"]._wandb_init["mode"] == expected  # no run is started here


def test_callbacks_instantiate():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import (
        EarlyStopping,
        LearningRateMonitor,
        ModelCheckpoint,
        TQDMProgressBar,
    )

    from protperf.runtime.preemption import ResumeCheckpoint
    from tests.model.conftest import CONF

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("train", overrides=["output_dir=o"])  # the defaults, untouched
    types = {type(instantiate(node)) for node in cfg.callbacks.values()}
    assert types == {ModelCheckpoint, EarlyStopping, LearningRateMonitor, TQDMProgressBar,
                     ResumeCheckpoint}
    assert {"model_checkpoint", "last_checkpoint", "resume_checkpoint"} <= set(cfg.callbacks)
