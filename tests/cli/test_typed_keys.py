"""Which keys the user typed: dotted keys, and every key of a typed group choice."""

from __future__ import annotations

from protperf.cli.typed import typed_keys, typed_values
from protperf.model.config import ModelConfig


def test_typed_keys_of_a_section():
    overrides = ["model.attention.kind=favor_relu", "+model.dim=64", "data.path=x.fasta",
                 "model=performer_softmax", "trainer.max_steps=3"]
    assert typed_keys("model", overrides) == [
        "model.attention.kind", "model.dim", "model.name"]
    assert typed_keys("data", []) == []
    assert typed_keys("model") is None  # not a Hydra run: unknown


def test_typed_values_are_nested_relative_to_the_section():
    config = ModelConfig(dim=64)
    assert typed_values(config, "model", ["model.dim", "model.attention.kind"]) == {
        "dim": 64, "attention": {"kind": "favor_relu"}}
