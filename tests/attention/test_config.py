import pytest

from protperf.attention import AttentionConfig
from protperf.errors import ConfigError


def test_defaults_are_valid():
    cfg = AttentionConfig()
    assert (cfg.kind, cfg.num_features, cfg.chunk_size, cfg.feature_type) == (
        "exact", 256, None, "orthogonal")
    assert AttentionConfig(kind="favor_relu").is_performer
    assert not AttentionConfig(kind="identity").is_performer


def test_default_chunk_size_follows_the_head_dim():
    assert [AttentionConfig().causal_chunk_size(d) for d in (8, 32, 64)] == [16, 32, 64]
    assert AttentionConfig(chunk_size=7).causal_chunk_size(64) == 7


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "linear"}, r"{p}.kind='linear' is not one of exact"),
        ({"num_features": 0}, r"{p}.num_features must be an integer > 0, got 0"),
        ({"chunk_size": -3}, r"{p}.chunk_size must be an integer > 0, got -3"),
        ({"redraw_interval": -1}, r"{p}.redraw_interval must be an integer >= 0, got -1"),
        ({"feature_type": "gaussian"}, r"{p}.feature_type='gaussian' is not one of"),
        ({"norm_scaling": "unit"}, r"{p}.norm_scaling='unit' is not one of chi, sqrt_d"),
        ({"relu_eps": -1e-3}, r"{p}.relu_eps must be >= 0, got -0.001"),
        ({"kind": "favor_softmax", "no_projection": True},
         r"{p}.no_projection=True needs {p}.kind='favor_relu'"),
        ({"kind": "favor_relu", "feature_type": "favorpp"},
         r"{p}.feature_type='favorpp' is a softmax-kernel estimator"),
    ],
)
def test_bad_fields_are_named(kwargs, message):
    """Each message names the full key: the default place (model.attention) or the prefix."""
    with pytest.raises(ConfigError, match="^" + message.format(p="model.attention")):
        AttentionConfig(**kwargs).validate()
    with pytest.raises(ConfigError, match="^" + message.format(p="x.attention")):
        AttentionConfig(**kwargs).validate("x.attention")
