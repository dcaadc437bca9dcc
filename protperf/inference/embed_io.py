"""Writing and reading embedding outputs.

``format='npy'`` (default): proteins are grouped in chunks of ``proteins_per_file``; per chunk and
layer ``embeddings/chunk_00000.mean_l2.npy`` holds the means (n, D) and, with per_tok,
``chunk_00000.per_tok_l2.npy`` the residues of the chunk's proteins concatenated (sum L, D).
``embeddings/index.csv`` has one row per protein: id, length, embedded_length, file (the
chunk stem), row (its row in the mean arrays) and offset (its first row in the per_tok
arrays). ``format='npz'`` / ``'pt'``: one file per protein (``mean_l2``, ``per_tok_l2``
keys; file = its name, row 0, offset 0). ``embeddings/model.json`` records the model's number
of layers N, so that ``layer=-1`` (= N) means the same when reading as when embedding.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from protperf.checkpoint.atomic import atomic_directory, check_writable
from protperf.errors import ConfigError, InferenceInputError
from protperf.inference.embed import ProteinEmbedding

FORMATS = ("npy", "npz", "pt")
INDEX_COLUMNS = ["id", "length", "embedded_length", "file", "row", "offset"]


def _arrays(emb: ProteinEmbedding) -> dict[str, np.ndarray]:
    out = {f"mean_l{layer}": value for layer, value in emb.mean.items()}
    out.update({f"per_tok_l{layer}": value for layer, value in emb.per_tok.items()})
    return out


def _safe_name(record_id: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]", "_", record_id)[:100] or "protein"
    name, n = base, 1
    while name in taken:
        name, n = f"{base}.{n}", n + 1
    taken.add(name)
    return name


class EmbeddingWriter:
    """Collects embeddings and writes them under ``<output_dir>/embeddings``; call
    :meth:`close` (or use as a context manager) to flush the last chunk and the index.

    The files are written into a folder beside ``embeddings`` that takes its place at
    :meth:`close` (:func:`~protperf.checkpoint.atomic.atomic_directory`: an earlier
    ``embeddings`` keeps the files this run does not write); a failure, Ctrl-C or SIGTERM
    leaves no partial folder (:meth:`abort`). ``need_bytes``: free space the output needs,
    checked (with a write probe) before anything is computed."""

    def __init__(self, output_dir: str | Path, format: str = "npy", proteins_per_file: int = 1000,
                 num_layers: int | None = None, need_bytes: int = 0):
        if format not in FORMATS:
            raise ConfigError(f"format={format!r} is not one of {', '.join(FORMATS)}")
        if proteins_per_file < 1:
            raise ConfigError(f"proteins_per_file must be >= 1, got {proteins_per_file}")
        self.target = Path(output_dir) / "embeddings"
        check_writable(output_dir, "embeddings", need_bytes)
        self._staging = atomic_directory(self.target, "embeddings")
        self.directory = self._staging.__enter__()
        self.format, self.proteins_per_file = format, proteins_per_file
        self.num_layers = num_layers  # the model's N, written to model.json
        self.index: list[dict] = []
        self._pending: list[ProteinEmbedding] = []
        self._chunks = 0
        self._names: set[str] = set()

    def write(self, emb: ProteinEmbedding) -> None:
        if self.format == "npy":
            self._pending.append(emb)
            if len(self._pending) == self.proteins_per_file:
                self._flush()
            return
        name = _safe_name(emb.record_id, self._names) + "." + self.format
        arrays = _arrays(emb)
        if self.format == "npz":
            np.savez(self.directory / name, **arrays)
        else:
            torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, self.directory / name)
        self.index.append(self._row(emb, name, 0, 0))

    @staticmethod
    def _row(emb: ProteinEmbedding, file: str, row: int, offset: int) -> dict:
        return {"id": emb.record_id, "length": emb.length,
                "embedded_length": emb.embedded_length, "file": file, "row": row,
                "offset": offset}

    def _flush(self) -> None:
        if not self._pending:
            return
        stem = f"chunk_{self._chunks:05d}"
        names = _arrays(self._pending[0]).keys()
        for key in names:
            parts = [_arrays(emb)[key] for emb in self._pending]
            stacked = np.stack(parts) if key.startswith("mean") else np.concatenate(parts)
            np.save(self.directory / f"{stem}.{key}.npy", stacked)
        offset = 0
        for row, emb in enumerate(self._pending):
            self.index.append(self._row(emb, stem, row, offset))
            offset += emb.embedded_length
        self._pending, self._chunks = [], self._chunks + 1

    def close(self) -> Path:
        """Write what is left and ``index.csv``, then put the folder in place; returns the
        index path."""
        try:
            self._flush()
            if self.num_layers is not None:
                (self.directory / "model.json").write_text(
                    json.dumps({"num_layers": self.num_layers}) + "\n")
            pd.DataFrame(self.index, columns=INDEX_COLUMNS).to_csv(
                self.directory / "index.csv", index=False)
        except BaseException as error:
            self.abort(error)
            raise
        self._staging.__exit__(None, None, None)
        self.directory = self.target
        return self.target / "index.csv"

    def abort(self, error: BaseException | None = None) -> None:
        """Remove the folder being written; ``embeddings`` stays as it was. A failed write
        (``error``) is raised as one line naming the folder."""
        error = error or KeyboardInterrupt()
        try:
            self._staging.__exit__(type(error), error, error.__traceback__)
        except BaseException as raised:
            if raised is not error:
                raise

    def __enter__(self) -> EmbeddingWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is None:
            self.close()
        else:
            self.abort(error)


def read_index(output_dir: str | Path) -> pd.DataFrame:
    """``<output_dir>/embeddings/index.csv`` as a DataFrame (ids as strings)."""
    return pd.read_csv(Path(output_dir) / "embeddings" / "index.csv", dtype={"id": str})


def load_embedding(output_dir: str | Path, entry, key: str) -> np.ndarray:
    """One protein's array ``key`` (e.g. ``mean_l2``, ``per_tok_l2``) for an index row."""
    directory = Path(output_dir) / "embeddings"
    file = str(entry["file"])
    if file.endswith(".npz"):
        with np.load(directory / file) as arrays:
            return arrays[key]
    if file.endswith(".pt"):
        return torch.load(directory / file, weights_only=True)[key].numpy()
    array = np.load(directory / f"{file}.{key}.npy", mmap_mode="r")
    if key.startswith("mean"):
        return np.array(array[int(entry["row"])])
    start = int(entry["offset"])
    return np.array(array[start : start + int(entry["embedded_length"])])


def stored_layer(output_dir: str | Path, layer: int) -> int:
    """``layer`` as stored (0..N); negative counts from the end as in the command
    (-1 = N), using the number of layers in ``embeddings/model.json``."""
    if layer >= 0:
        return layer
    meta = Path(output_dir) / "embeddings" / "model.json"
    if not meta.is_file():
        raise InferenceInputError(
            f"{meta} is missing (embeddings written by an older protperf): give layer as a "
            "number from 0 (token embeddings) to N (the last block)")
    num_layers = int(json.loads(meta.read_text())["num_layers"])
    if not -num_layers - 1 <= layer:
        raise InferenceInputError(
            f"layer {layer} is out of range for a {num_layers}-layer model (0..{num_layers})")
    return layer + num_layers + 1


def load_means(output_dir: str | Path, layer: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(index, (N, D) mean embeddings of ``layer`` in index order); ``layer`` may be negative
    (-1 = the last block), as in the command's ``layers``."""
    index = read_index(output_dir)
    key = f"mean_l{stored_layer(output_dir, layer)}"
    return index, np.stack([load_embedding(output_dir, row, key) for _, row in index.iterrows()])
