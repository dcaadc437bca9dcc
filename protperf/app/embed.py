"""``protperf-embed``: checkpoint + FASTA -> mean / per-residue embeddings + index.csv."""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from protperf.checkpoint.atomic import check_writable
from protperf.cli.command import command
from protperf.cli.config import EmbedConfig
from protperf.data.fasta import read_fasta
from protperf.errors import InferenceInputError
from protperf.inference import load_model
from protperf.inference.embed import Embedder
from protperf.inference.embed_io import EmbeddingWriter
from protperf.resources import SAMPLE_FASTA

log = logging.getLogger(__name__)
#: Bytes per stored embedding value (float32).
VALUE_BYTES = 4


def count_records(path: Path) -> tuple[int, int]:
    """The number of FASTA records and of their residues, read once before the model loads:
    an empty file or a malformed one (a header that is not UTF-8, ...) fails before anything
    is written."""
    count = residues = 0
    for _, sequence in read_fasta(path):
        count, residues = count + 1, residues + len(sequence)
    if count == 0:
        raise InferenceInputError(f"{path}: no FASTA records to embed")
    return count, residues


def output_bytes(embedder: Embedder, proteins: int, residues: int) -> int:
    """About how many bytes the embeddings of ``proteins`` (``residues`` in all) take."""
    rows = (proteins if "mean" in embedder.include else 0) + \
        (residues if "per_tok" in embedder.include else 0)
    return VALUE_BYTES * embedder.model.config.dim * len(embedder.layers) * rows


def embed(config: EmbedConfig) -> Path:
    """Embed every record of the FASTA; returns the index path. The output folder is checked
    to be writable (and to have room for the embeddings) before anything is computed."""
    path = Path(config.data.path) if config.data.path else SAMPLE_FASTA
    total, residues = count_records(path)
    check_writable(config.output_dir, "embeddings")
    model = load_model(config.checkpoint, config.device,
                       model_overrides=config.model.as_overrides())
    embedder = Embedder(model, config.layers, config.include, config.toks_per_batch,
                        config.too_long)
    with EmbeddingWriter(config.output_dir, config.format, config.proteins_per_file,
                         num_layers=model.config.num_layers,
                         need_bytes=output_bytes(embedder, total, residues)) as writer:
        results = embedder.embed(read_fasta(path), source=str(path))
        for emb in tqdm(results, total=total, unit="protein", disable=not config.progress,
                        desc="embed"):
            writer.write(emb)
    index = writer.target / "index.csv"
    if embedder.cropped:
        log.warning("%d proteins were longer than the learned positional table and embedded "
                    "in part (first %d residues; embedded_length in index.csv)",
                    len(embedder.cropped), embedder.max_residues)
    print(f"[protperf] embedded {len(writer.index)} proteins (layers "
          f"{embedder.layers}) -> {index}", flush=True)
    return index


main = command("embed")(embed)
