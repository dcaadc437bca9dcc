"""Train a protein language model: ``python scripts/train.py [model=...] [task=...] [...]``.

See ``conf/train.yaml`` for the options and README "Models and training" for examples.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from protperf.model.checkpoint import CheckpointMismatchError
from protperf.model.config import ConfigError
from protperf.model.schema import register_configs
from protperf.model.train import train

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Returns the final validation loss (the objective of Hydra sweepers)."""
    try:
        return train(cfg)["val_loss"]
    except (ConfigError, CheckpointMismatchError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
