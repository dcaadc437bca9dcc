"""Train a protein language model: ``python scripts/train.py [model=...] [task=...] [...]``.

See ``conf/train.yaml`` for the options and README "Models and training" for examples.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from protperf.model.schema import register_configs
from protperf.model.train import train

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    return train(cfg)["val_loss"]


if __name__ == "__main__":
    main()
