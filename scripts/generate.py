"""Sample proteins: ``python scripts/generate.py checkpoint=CKPT num_samples=N max_length=L seed=S
output=FASTA`` (causal checkpoints). See ``conf/generate.yaml``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from protperf.app.generate import generate
from protperf.app.inference_common import register_inference_configs, run_app

register_inference_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    run_app(generate, cfg)


if __name__ == "__main__":
    main()
