"""What makes a saved model trustworthy: a content hash of its tensors, finite weights.

A checkpoint (under :data:`INTEGRITY_KEY` in its dict) and an export directory (the same key
in its ``config.json``) carry ``{"algorithm": "sha256", "tensors": {name: hex digest}}``,
written in the same atomic write as the tensors. A tensor's digest covers its dtype, shape and
bytes. Loading checks every digest (a mismatch names the file and the first bad tensor) and
refuses a NaN or inf weight. Files written before hashes existed load with a warning.

Cost: sha256 runs at a few hundred MB/s on one core; the finite check is one ``aminmax``
reduction per tensor (no copy). ``scripts/benchmark_checkpoint_io.py`` measures both against
``torch.load`` of the same file.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import torch

from protperf.errors import CheckpointError

log = logging.getLogger(__name__)

ALGORITHM = "sha256"
#: Key of the content hash in a checkpoint dict and in an export directory's config.json.
INTEGRITY_KEY = "protperf_integrity"
_warned: set[str] = set()


def tensor_digest(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes (as stored, on the CPU)."""
    digest = hashlib.new(ALGORITHM)
    digest.update(f"{tensor.dtype}:{tuple(tensor.shape)}:".encode())
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    if flat.numel():
        digest.update(memoryview(flat.view(torch.uint8).numpy()))
    return digest.hexdigest()


def integrity_record(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``{"algorithm": "sha256", "tensors": {name: digest}}`` of the tensors of
    ``state_dict`` (other entries are not hashed)."""
    return {"algorithm": ALGORITHM,
            "tensors": {name: tensor_digest(value) for name, value in state_dict.items()
                        if isinstance(value, torch.Tensor)}}


def verify_integrity(state_dict: Mapping[str, Any], record: Any, source: str) -> None:
    """Check the tensors of ``state_dict`` against ``record`` (:func:`integrity_record`);
    :class:`CheckpointError` names ``source`` and the first tensor that differs. A ``record``
    of None (written before hashes existed) logs a warning once per ``source``."""
    if record is None:
        if source not in _warned:
            _warned.add(source)
            log.warning("%s has no content hash (written by an older protperf): loaded "
                        "without an integrity check", source)
        return
    if not isinstance(record, Mapping) or record.get("algorithm") != ALGORITHM \
            or not isinstance(record.get("tensors"), Mapping):
        raise CheckpointError(f"{source} has an unreadable content hash "
                              f"({INTEGRITY_KEY} is not a {ALGORITHM} record)")
    stored = record["tensors"]
    tensors = {name: value for name, value in state_dict.items()
               if isinstance(value, torch.Tensor)}
    for name, value in tensors.items():
        if name not in stored:
            raise CheckpointError(f"{source} is damaged: tensor {name} has no stored hash "
                                  "(the file changed after it was written)")
        if tensor_digest(value) != stored[name]:
            raise CheckpointError(
                f"{source} is damaged: tensor {name} does not match its stored {ALGORITHM} "
                "(the file changed after it was written); restore it or write it again")
    missing = [name for name in stored if name not in tensors]
    if missing:
        raise CheckpointError(f"{source} is damaged: tensor {missing[0]} is missing "
                              "(the file changed after it was written)")


def first_nonfinite(state_dict: Mapping[str, Any]) -> str | None:
    """The name of the first floating tensor of ``state_dict`` with a NaN or inf, else None
    (one min/max reduction per tensor: NaN propagates, inf is an extreme)."""
    for name, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel():
            low, high = torch.aminmax(value.detach())
            if not (bool(torch.isfinite(low)) and bool(torch.isfinite(high))):
                return name
    return None


def check_finite(state_dict: Mapping[str, Any], source: str,
                 consequence: str = "this model cannot be used (take an earlier checkpoint)"
                 ) -> None:
    """:class:`CheckpointError` naming ``source`` and the first weight with a NaN or inf."""
    bad = first_nonfinite(state_dict)
    if bad is not None:
        raise CheckpointError(f"{source}: weight {bad} is not finite (NaN or inf); "
                              f"{consequence}")
