"""``protperf-embed``: checkpoint + FASTA -> mean / per-residue embeddings + index.csv."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING
from tqdm import tqdm

from protperf.app.inference_common import inference_command
from protperf.data.fasta import read_fasta
from protperf.inference import load_model
from protperf.inference.embed import Embedder
from protperf.inference.embed_io import EmbeddingWriter
from protperf.model.overrides import ModelOverrides
from protperf.resources import SAMPLE_FASTA

log = logging.getLogger(__name__)


@dataclass
class EmbedData:
    """The input FASTA (plain or .gz); None = the bundled sample."""

    path: str | None = None


@dataclass
class EmbedConfig:
    """Root of ``protperf/conf/embed.yaml``; see :mod:`protperf.inference.embed` for the policy."""

    checkpoint: str = MISSING  # a .ckpt file or an export directory (protperf-export)
    model: ModelOverrides = field(default_factory=ModelOverrides)  # e.g. model.attention.kind
    data: EmbedData = field(default_factory=EmbedData)
    output_dir: str = MISSING
    layers: list[int] = field(default_factory=lambda: [-1])
    include: list[str] = field(default_factory=lambda: ["mean"])  # mean, per_tok
    toks_per_batch: int = 4096
    format: str = "npy"  # npy (chunks + index) | npz | pt (one file per protein)
    proteins_per_file: int = 1000
    too_long: str = "crop"  # crop | error (models with a learned positional table)
    device: str = "cpu"
    progress: bool = True
    run_name: str = "embed"


def embed(config: EmbedConfig) -> Path:
    """Embed every record of the FASTA; returns the index path."""
    model = load_model(config.checkpoint, config.device,
                       model_overrides=config.model.as_overrides())
    embedder = Embedder(model, config.layers, config.include, config.toks_per_batch,
                        config.too_long)
    path = Path(config.data.path) if config.data.path else SAMPLE_FASTA
    writer = EmbeddingWriter(config.output_dir, config.format, config.proteins_per_file)
    results = embedder.embed(read_fasta(path), source=str(path))
    for emb in tqdm(results, unit="protein", disable=not config.progress, desc="embed"):
        writer.write(emb)
    index = writer.close()
    if embedder.cropped:
        log.warning("%d proteins were longer than the learned positional table and embedded "
                    "in part (first %d residues; embedded_length in index.csv)",
                    len(embedder.cropped), embedder.max_residues)
    print(f"[protperf] embedded {len(writer.index)} proteins (layers "
          f"{embedder.layers}) -> {index}", flush=True)
    return index


main = inference_command("embed", embed, EmbedConfig)
