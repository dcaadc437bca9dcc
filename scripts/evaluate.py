"""Evaluate checkpoints: ``python scripts/evaluate.py checkpoints=[a.ckpt,b.ckpt] [...]``.

Writes ``evaluation.csv`` and ``evaluation.md`` (test accuracy and perplexity) into the run
directory. ``model.attention.kind=favor_relu`` evaluates exact weights as a Performer;
``finetune.steps=N`` trains N steps first. See ``conf/evaluate.yaml``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from protperf.model.evaluate import evaluate
from protperf.model.schema import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
