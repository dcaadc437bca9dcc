"""Readable one-record references of what preparation computes in bulk."""

from __future__ import annotations

import hashlib

import numpy as np


def split_of(rid: str, valid_fraction: float, test_fraction: float) -> str:
    """The split rule for one record id: ``u = blake2b(id) / 2**64``; test if
    ``u < test_fraction``, valid if ``u < test_fraction + valid_fraction``, else train."""
    digest = hashlib.blake2b(rid.encode("utf-8"), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / float(2**64)
    if u < test_fraction:
        return "test"
    if u < test_fraction + valid_fraction:
        return "valid"
    return "train"


def sequences(records) -> list[str]:
    """Residue strings of a chunk's records (``ChunkRecords``), as the reference parser gives
    them."""
    ends = np.cumsum(records.lengths).tolist()
    starts = [0] + ends[:-1]
    text = records.residues().decode("latin-1")
    return [text[a:b] for a, b in zip(starts, ends, strict=True)]
