"""The split rule: which split a record lands in, from its id alone.

``u = int(blake2b(id, digest_size=8)) / 2**64``; ``u < test_fraction`` -> test,
``u < test_fraction + valid_fraction`` -> valid, else train.  It depends on the record id only
(UniRef cluster id), so an id lands in the same split on every run and machine.
"""

from __future__ import annotations

import hashlib

import numpy as np

from protperf.data.config import PrepareConfig
from protperf.data.preparation.records import RecordIds

_blake2b = hashlib.blake2b
_HASH_SCALE = float(2**64)


def split_codes(ids: RecordIds | list[str], cfg: PrepareConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, digests)``: 0 train, 1 valid, 2 test per id (the rule above, in float64)
    ``(N,)`` int8, and the ids' 8-byte blake2b digests ``(N,)`` uint64 (also used to find
    duplicate ids).

    The per-id work is one hashlib call chain; the comparison is vectorized.
    """
    if not len(ids):
        return np.zeros(0, dtype=np.int8), np.zeros(0, dtype=np.uint64)
    keys = (ids if isinstance(ids, RecordIds) else RecordIds.from_list(ids)).keys()
    # copying a fresh 8-byte blake2b state is twice as fast as constructing one per id
    # (keyword parsing dominates for short ids); the digests are the same
    new_hash = _blake2b(digest_size=8).copy
    digests = []
    append = digests.append
    for key in keys:
        state = new_hash()
        state.update(key)
        append(state.digest())
    digests = np.frombuffer(b"".join(digests), dtype=">u8").astype(np.uint64)
    u = digests.astype(np.float64) / _HASH_SCALE
    codes = np.zeros(len(keys), dtype=np.int8)
    codes[u < cfg.test_fraction + cfg.valid_fraction] = 1
    codes[u < cfg.test_fraction] = 2
    return codes, digests
