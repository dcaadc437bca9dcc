"""Whether saved hyper-parameters fit the model they are loaded into (alphabet, shapes)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from protperf.data.alphabet import ALPHABET
from protperf.errors import CheckpointMismatchError

# Model keys that change parameter shapes or what the weights compute: a checkpoint only
# loads into the same values (keys a checkpoint lacks, from older versions, are not compared).
ARCHITECTURE_KEYS = (
    "dim", "num_heads", "num_layers", "ffn_dim", "vocab_size", "position", "max_position",
    "tie_embeddings", "layer_norm_eps", "norm_placement", "embedding_norm", "final_norm",
    "token_type_vector", "token_dropout", "lm_head_transform",
)


def check_compatible(
    saved: Mapping[str, Any], current: Mapping[str, Any], source: str = "checkpoint"
) -> None:
    """Compare the alphabet and the shape-defining ``model.*`` keys of two hparam dicts."""
    saved_alphabet = list(saved.get("alphabet") or [])
    current_alphabet = list(current.get("alphabet") or ALPHABET.tokens)
    if saved_alphabet and saved_alphabet != current_alphabet:
        first = next(
            (i for i, (a, b) in enumerate(zip(saved_alphabet, current_alphabet, strict=False))
            if a != b),
            min(len(saved_alphabet), len(current_alphabet)),
        )
        raise CheckpointMismatchError(
            f"{source} was trained with a different alphabet ({len(saved_alphabet)} tokens, "
            f"this code has {len(current_alphabet)}; first difference at token id {first}: "
            f"{saved_alphabet[first:first + 1]} vs {current_alphabet[first:first + 1]})"
        )
    saved_model, current_model = saved.get("model") or {}, current.get("model") or {}
    differences = [
        f"model.{key}={saved_model[key]!r} in the {source} but {current_model[key]!r} here"
        for key in ARCHITECTURE_KEYS
        if key in saved_model and key in current_model and saved_model[key] != current_model[key]
    ]
    if differences:
        raise CheckpointMismatchError(
            f"{source} has a different architecture: " + "; ".join(differences)
        )


def merge_overrides(values: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict:
    """Recursively overlay non-None ``overrides`` onto a copy of ``values``."""
    merged = copy.deepcopy(dict(values))
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged
