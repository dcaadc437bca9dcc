"""Typed configuration of the data pipeline (mirrored by ``conf/data/*.yaml``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from protperf.errors import ConfigError
from protperf.resources import SAMPLE_FASTA


def default_cache_dir() -> Path:
    """``$PROTPERF_CACHE`` or ``~/.cache/protperf/prepared``."""
    env = os.environ.get("PROTPERF_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "protperf" / "prepared"


@dataclass
class PrepareConfig:
    """How a FASTA file becomes a prepared directory of token shards.

    Every field changes the prepared output, so all of them enter the cache key.
    """

    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    #: Proteins with fewer residues are skipped (reason ``too_short``).
    min_residues: int = 1
    #: Proteins with more residues are skipped (``too_long``) or truncated; ``None`` = no limit.
    max_residues: int | None = None
    #: ``"skip"`` or ``"truncate"`` (keep the first ``max_residues`` residues).
    long_policy: str = "skip"
    #: ``"error"`` stops at the first invalid character; ``"skip"`` counts the record as
    #: ``invalid_characters`` and goes on.
    on_invalid: str = "error"
    #: Input bytes per chunk; one chunk becomes one shard per split.  Fixed (not derived from
    #: the number of processes) so that the output does not depend on ``workers``.
    chunk_bytes: int = 64 * 1024 * 1024
    #: A chunk whose kept records are mostly nucleotide-like (only A/C/G/T/U/N) is an error
    #: unless this is set; such records are counted (``nucleotide_like``) either way.
    allow_nucleotide: bool = False
    #: A record whose id an earlier kept record has: ``"keep"`` (counted as ``duplicate_ids``)
    #: or ``"drop"`` (also counted as skipped, reason ``duplicate_id``).
    duplicate_ids: str = "keep"

    def validate(self, prefix: str = "data.prepare") -> None:
        """Raise :class:`ConfigError` naming the ``<prefix>.*`` key of a bad value."""
        p = f"{prefix}." if prefix else ""
        for key in ("valid_fraction", "test_fraction"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{p}{key} must be in [0, 1), got {value}")
        if self.valid_fraction + self.test_fraction >= 1.0:
            raise ConfigError(
                f"{p}valid_fraction + {p}test_fraction must be < 1, got "
                f"{self.valid_fraction} + {self.test_fraction}"
            )
        if self.min_residues < 0:
            raise ConfigError(f"{p}min_residues must be >= 0, got {self.min_residues}")
        if self.max_residues is not None and self.max_residues < max(1, self.min_residues):
            raise ConfigError(
                f"{p}max_residues ({self.max_residues}) must be >= {p}min_residues "
                f"({self.min_residues}) and >= 1"
            )
        if self.long_policy not in ("skip", "truncate"):
            raise ConfigError(
                f"{p}long_policy must be 'skip' or 'truncate', got {self.long_policy!r}"
            )
        if self.on_invalid not in ("error", "skip"):
            raise ConfigError(
                f"{p}on_invalid must be 'error' or 'skip', got {self.on_invalid!r}"
            )
        if self.chunk_bytes < 1024:
            raise ConfigError(f"{p}chunk_bytes must be >= 1024, got {self.chunk_bytes}")
        if self.duplicate_ids not in ("keep", "drop"):
            raise ConfigError(
                f"{p}duplicate_ids must be 'keep' or 'drop', got {self.duplicate_ids!r}")
        if not isinstance(self.allow_nucleotide, bool):
            raise ConfigError(f"{p}allow_nucleotide must be true or false, got "
                             f"{self.allow_nucleotide!r}")


@dataclass
class DataConfig:
    """Everything the data module needs: where the data is, how it is prepared and batched."""

    #: A FASTA file (plain or .gz; prepared on first use) or a prepared directory.
    #: ``None`` means the bundled sample.
    path: str | None = str(SAMPLE_FASTA)
    #: Where prepared directories of FASTA inputs are cached (``None``: ``default_cache_dir()``).
    cache_dir: str | None = None
    batch_size: int = 8
    #: Per-protein mode: tokens per example including bos/eos (longer proteins are cropped).
    max_length: int = 1024
    #: Pack proteins (``... eos bos ...``) into fixed windows of ``window`` tokens.
    concatenate: bool = False
    window: int = 8192
    #: In packed windows, attention may cross protein boundaries (the paper's setting). ``False``
    #: restarts it at every protein (batches carry ``segment_ids``; linear time either way).
    cross_protein_attention: bool = True
    num_workers: int = 2
    mask_prob: float = 0.15
    #: How the FASTA file is prepared (``data.prepare.*``; part of the cache key).
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    #: Processes used to prepare a FASTA file (the output does not depend on it).
    prepare_workers: int = 2
    seed: int = 0

    def resolved_path(self) -> Path:
        return SAMPLE_FASTA if self.path is None else Path(self.path).expanduser()

    def resolved_cache_dir(self) -> Path:
        return default_cache_dir() if self.cache_dir is None else Path(self.cache_dir).expanduser()

    def validate(self, prefix: str = "data") -> None:
        """Raise :class:`ConfigError` naming the ``<prefix>.*`` key of a bad value."""
        p = f"{prefix}." if prefix else ""
        self.prepare.validate(f"{p}prepare")
        if self.batch_size < 1:
            raise ConfigError(f"{p}batch_size must be >= 1, got {self.batch_size}")
        if self.max_length < 3:
            raise ConfigError(f"{p}max_length must be >= 3 (bos, a residue, eos), got "
                             f"{self.max_length}")
        if self.window < 2:
            raise ConfigError(f"{p}window must be >= 2, got {self.window}")
        if not 0.0 < self.mask_prob < 1.0:
            raise ConfigError(f"{p}mask_prob must be in (0, 1), got {self.mask_prob}")
        if self.num_workers < 0 or self.prepare_workers < 1:
            raise ConfigError(f"{p}num_workers must be >= 0 and {p}prepare_workers >= 1")
