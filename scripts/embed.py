"""Embed proteins: ``python scripts/embed.py checkpoint=CKPT data.path=FASTA output_dir=DIR``.

Writes ``DIR/embeddings/`` (``.npy`` chunks + ``index.csv``); see ``conf/embed.yaml``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from protperf.app.embed import embed
from protperf.app.inference_common import register_inference_configs, run_app

register_inference_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="embed")
def main(cfg: DictConfig) -> None:
    run_app(embed, cfg)


if __name__ == "__main__":
    main()
