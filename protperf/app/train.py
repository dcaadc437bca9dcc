"""``protperf-train`` / ``scripts/train.py``: the command around :func:`protperf.training.train`."""

from __future__ import annotations

from protperf.cli.command import command
from protperf.cli.config import TrainConfig
from protperf.training import train


@command("train")
def main(config: TrainConfig) -> float:
    """Train; returns the final validation loss (the objective of Hydra sweepers)."""
    return train(config)["val_loss"]
