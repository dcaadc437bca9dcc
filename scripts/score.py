"""Score variants:
``python scripts/score.py checkpoint=CKPT mutations=CSV wildtype=FASTA output=CSV``.

One column per method; Spearman rho printed when the CSV has ``DMS_score``. See
``conf/score.yaml``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from protperf.app.inference_common import register_inference_configs, run_app
from protperf.app.score import score

register_inference_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="score")
def main(cfg: DictConfig) -> None:
    run_app(score, cfg)


if __name__ == "__main__":
    main()
