"""Evaluate checkpoints: ``python scripts/evaluate.py checkpoints=[a.ckpt,b.ckpt] [...]``.

Writes ``evaluation.csv`` and ``evaluation.md`` (test accuracy and perplexity) into the run
directory. ``model.attention.kind=favor_relu`` evaluates exact weights as a Performer;
``finetune.steps=N`` trains N steps first. See ``conf/evaluate.yaml``.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from protperf.model.checkpoint import CheckpointMismatchError
from protperf.model.config import ConfigError
from protperf.model.evaluate import evaluate
from protperf.model.schema import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except (ConfigError, CheckpointMismatchError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
