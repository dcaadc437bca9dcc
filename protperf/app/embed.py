"""``protperf-embed``: checkpoint + FASTA -> mean / per-residue embeddings + index.csv."""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from protperf.cli.command import command
from protperf.cli.config import EmbedConfig
from protperf.data.fasta import read_fasta
from protperf.errors import InferenceInputError
from protperf.inference import load_model
from protperf.inference.embed import Embedder, protein_tokens
from protperf.inference.embed_io import EmbeddingWriter
from protperf.resources import SAMPLE_FASTA

log = logging.getLogger(__name__)


def count_records(path: Path) -> int:
    """The number of FASTA records, read once before the model loads: an empty file, a
    malformed one (a header that is not UTF-8, ...) or a record without residues or with an
    invalid letter fails before anything is written or a progress bar is drawn."""
    count = 0
    for record_id, residues in read_fasta(path):
        protein_tokens(record_id, residues, str(path))
        count += 1
    if count == 0:
        raise InferenceInputError(f"{path}: no FASTA records to embed")
    return count


def embed(config: EmbedConfig) -> Path:
    """Embed every record of the FASTA; returns the index path."""
    path = Path(config.data.path) if config.data.path else SAMPLE_FASTA
    total = count_records(path)
    model = load_model(config.checkpoint, config.device,
                       model_overrides=config.model.as_overrides())
    embedder = Embedder(model, config.layers, config.include, config.toks_per_batch,
                        config.too_long)
    writer = EmbeddingWriter(config.output_dir, config.format, config.proteins_per_file,
                             num_layers=model.config.num_layers)
    results = embedder.embed(read_fasta(path), source=str(path))
    for emb in tqdm(results, total=total, unit="protein", disable=not config.progress,
                    desc="embed"):
        writer.write(emb)
    index = writer.close()
    if embedder.cropped:
        log.warning("%d proteins were longer than the learned positional table and embedded "
                    "in part (first %d residues; embedded_length in index.csv)",
                    len(embedder.cropped), embedder.max_residues)
    print(f"[protperf] embedded {len(writer.index)} proteins (layers "
          f"{embedder.layers}) -> {index}", flush=True)
    return index


main = command("embed")(embed)
