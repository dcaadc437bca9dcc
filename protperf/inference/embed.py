"""Per-protein and per-residue embeddings of chosen layers (like ESM's extract).

A protein is encoded as ``<cls> residues <eos>`` (the training layout); the mean embedding
averages the residue positions only, per-residue embeddings are (length, D) without the
specials. Proteins are read a window at a time, sorted by length inside the window and
batched under a token budget (padded tokens, ``toks_per_batch``), then returned in input
order. Padding is masked, so a protein's embedding does not depend on its batch.

Length policy: models without a learned positional table (rotary, or none) embed any
length in one pass (Performers in linear memory). A model with learned positions cannot
see past ``model.max_position`` tokens: ``too_long='crop'`` (default) embeds the first
max_position - 2 residues and logs a warning naming the protein (``embedded_length`` in the
result says what was used), ``too_long='error'`` refuses.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import torch

from protperf.data.batching import BatchConverter
from protperf.data.proteins import encode_protein
from protperf.errors import ConfigError, InferenceInputError
from protperf.model.transformer import ProteinLanguageModel

log = logging.getLogger(__name__)
INCLUDE = ("mean", "per_tok")
TOO_LONG = ("crop", "error")


@dataclass
class ProteinEmbedding:
    """One protein's embeddings: ``mean[layer]`` (D,), ``per_tok[layer]`` (L, D), float32."""

    record_id: str
    length: int
    embedded_length: int
    mean: dict[int, np.ndarray] = field(default_factory=dict)
    per_tok: dict[int, np.ndarray] = field(default_factory=dict)


def length_batches(lengths: list[int], toks_per_batch: int) -> list[list[int]]:
    """Indices grouped longest first so that each group's padded size (count x longest)
    stays within ``toks_per_batch`` (a longer protein goes alone)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        if current and (len(current) + 1) * longest > toks_per_batch:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def protein_tokens(record_id: str, residues: str, source: str) -> np.ndarray:
    """The token ids of one record's residues (a final stop codon dropped); an invalid letter
    or an empty sequence is an :class:`InferenceInputError` naming ``source`` and the record."""
    try:
        tokens = encode_protein(residues)
    except ValueError as error:
        raise InferenceInputError(f"{source}: record {record_id}: {error}") from None
    if not len(tokens):
        raise InferenceInputError(f"{source}: record {record_id}: empty sequence")
    return tokens


class Embedder:
    """Embeds proteins with a loaded model.

    Args:
        model: any :class:`ProteinLanguageModel` (MLM or CLM; put in eval mode here).
        layers: layer indices (0 = embeddings, -1 = last, after the final LayerNorm).
        include: any of ``mean``, ``per_tok``.
        toks_per_batch: padded-token budget of one forward pass.
        too_long: ``crop`` or ``error`` for proteins past a learned positional table.
    """

    def __init__(
        self,
        model: ProteinLanguageModel,
        layers: Iterable[int] = (-1,),
        include: Iterable[str] = ("mean",),
        toks_per_batch: int = 4096,
        too_long: str = "crop",
    ) -> None:
        self.model = model.eval()
        self.include = tuple(include)
        for name in self.include:
            if name not in INCLUDE:
                raise ConfigError(f"include: {name!r} is not one of {', '.join(INCLUDE)}")
        if too_long not in TOO_LONG:
            raise ConfigError(f"too_long={too_long!r} is not one of {', '.join(TOO_LONG)}")
        if toks_per_batch < 1:
            raise ConfigError(f"toks_per_batch must be >= 1, got {toks_per_batch}")
        try:
            self.layers = sorted({model.layer_index(layer) for layer in layers})
        except ValueError as error:
            raise ConfigError(f"layers: {error}") from None
        self.toks_per_batch, self.too_long = toks_per_batch, too_long
        self.converter = BatchConverter()
        cfg = model.config
        self.max_residues = cfg.max_position - 2 if cfg.position == "learned" else None
        self.cropped: list[str] = []  # ids of the proteins embedded in part (too_long=crop)

    def _tokens(self, record_id: str, residues: str, source: str) -> np.ndarray:
        tokens = protein_tokens(record_id, residues, source)
        if self.max_residues is not None and len(tokens) > self.max_residues:
            limit = self.model.config.max_position
            if self.too_long == "error":
                raise InferenceInputError(
                    f"{source}: record {record_id}: {len(tokens)} residues do not fit the "
                    f"learned positional table (model.max_position={limit}); use too_long=crop")
            log.warning("%s: %d residues, embedding the first %d (model.max_position=%d)",
                        record_id, len(tokens), self.max_residues, limit)
            tokens = tokens[: self.max_residues]
            self.cropped.append(record_id)
        return tokens

    @torch.no_grad()
    def _embed_group(self, ids: list[str], lengths: list[int], rows: list[np.ndarray]):
        device = self.model.token_embedding.weight.device
        input_ids, mask = self.converter(rows)
        input_ids, mask = input_ids.to(device), mask.to(device)
        # no padding (one protein, or equal lengths): no mask, so exact attention keeps its
        # fused O(L)-memory kernel instead of an (L, L) mask
        states = self.model.representations(input_ids, self.layers,
                                             None if bool(mask.all()) else mask)
        out = []
        for i, row in enumerate(rows):
            emb = ProteinEmbedding(ids[i], lengths[i], len(row))
            for layer, hidden in states.items():
                residues = hidden[i, 1 : len(row) + 1].float().cpu()
                if "mean" in self.include:
                    emb.mean[layer] = residues.mean(0).numpy()
                if "per_tok" in self.include:
                    emb.per_tok[layer] = residues.numpy()
            out.append(emb)
        return out

    def embed(
        self, records: Iterable[tuple[str, str]], source: str = "input", window: int = 1024
    ) -> Iterator[ProteinEmbedding]:
        """(record_id, residues) pairs -> embeddings in input order, ``window`` at a time."""
        iterator = iter(records)
        while chunk := list(islice(iterator, window)):
            ids = [record_id for record_id, _ in chunk]
            rows = [self._tokens(record_id, residues, source) for record_id, residues in chunk]
            lengths = [len(residues.removesuffix("*")) for _, residues in chunk]
            results: list[ProteinEmbedding | None] = [None] * len(chunk)
            for group in length_batches([len(r) + 2 for r in rows], self.toks_per_batch):
                done = self._embed_group([ids[i] for i in group], [lengths[i] for i in group],
                                         [rows[i] for i in group])
                for index, emb in zip(group, done, strict=True):
                    results[index] = emb
            yield from results  # type: ignore[misc]

    def embed_one(self, residues: str, record_id: str = "protein") -> ProteinEmbedding:
        """Embeddings of one residue string."""
        return next(self.embed([(record_id, residues)]))
