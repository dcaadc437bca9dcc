"""What a conversion refuses before it writes anything: each a one-line error naming the key,
file or record (the command exits with status 2, nothing is written at the output)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from protperf.checkpoint.load import SavedModel, read_checkpoint, read_saved_model
from protperf.checkpoint.writer import IMPORT_KEY
from protperf.data.alphabet import ALPHABET
from protperf.data.shards import SPLITS, PreparedSplit
from protperf.errors import ConfigError, DataError


def check_output(output: str | Path, force: bool) -> Path:
    """``output`` as a path; refuses an existing one unless ``force``, and a directory."""
    path = Path(output)
    if path.is_dir():
        raise ConfigError(f"output={path} is a directory; give a checkpoint file name "
                          "(e.g. output=converted.ckpt)")
    if path.exists() and not force:
        raise ConfigError(f"output={path} already exists (force=true replaces it)")
    return path


def read_source(source: str | Path) -> tuple[SavedModel, dict[str, Any]]:
    """The source model and its import record (``{}`` when it was not imported): a
    ``.ckpt`` file or an export directory; anything else is refused in one line."""
    path = Path(source)
    if not path.exists():
        raise ConfigError(
            f"checkpoint={source} is neither a checkpoint file nor an export directory here; "
            f"a pretrained model is imported first (protperf-import {source} --out "
            f"{path.name or 'model'}.ckpt), then converted")
    saved = read_saved_model(path)
    record = read_checkpoint(path).get(IMPORT_KEY, {}) if path.is_file() \
        else saved.hyper_parameters.get(IMPORT_KEY, {})
    return saved, dict(record or {})


def check_source(saved: SavedModel, source: str | Path, objective: str | None,
                 mlm_data_keys: Sequence[str] = ()) -> str:
    """The source's objective (``mlm`` / ``clm``) after refusing a Performer source, an
    ``objective`` other than the source's, and masked-LM data settings (``mlm_data_keys``,
    e.g. ``data.mask_prob`` typed on the command line) for a causal source."""
    attention = saved.hyper_parameters["model"].get("attention", {})
    kind = attention.get("kind", "exact")
    if kind != "exact":
        raise ConfigError(
            f"checkpoint={source} is already a Performer (model.attention.kind={kind}); "
            "convert takes an exact-attention model")
    source_objective = saved.hyper_parameters.get("task", {}).get("objective", "mlm")
    what = {"mlm": "masked (mlm)", "clm": "causal (clm)"}
    if objective is not None and objective != source_objective:
        raise ConfigError(
            f"objective={objective} does not fit checkpoint={source}, a "
            f"{what[source_objective]} model: a conversion keeps the source's objective")
    if source_objective == "clm" and mlm_data_keys:
        raise ConfigError(
            f"{mlm_data_keys[0]} is a masked-LM setting but checkpoint={source} is a "
            f"{what['clm']} model: its data are next-token batches")
    return source_objective


def lacking_letters(record: dict[str, Any]) -> list[str]:
    """The residue letters of protperf's alphabet an imported source's vocabulary lacks."""
    return [token for token in record.get("unpredicted_tokens", [])
            if len(token) == 1 and token.isalpha()]


def check_letters(prepared_dir: Path, letters: Sequence[str], source: str | Path,
                  data_path: str | Path) -> None:
    """Refuse data (``data_path``, prepared in ``prepared_dir``) holding a letter of
    ``letters``, naming the letter and the record."""
    if not letters:
        return
    ids = np.array([ALPHABET.tokens.index(letter) for letter in letters], dtype=np.int64)
    for split in SPLITS:
        prepared = PreparedSplit(prepared_dir, split)
        for shard_index, shard in enumerate(prepared.shards):
            found = np.flatnonzero(np.isin(np.asarray(shard.tokens), ids))
            if not len(found):
                continue
            position = int(found[0])
            protein = int(np.searchsorted(shard.offsets, position, side="right")) - 1
            letter = ALPHABET.tokens[int(shard.tokens[position])]
            record = shard.ids()[protein] if shard.ids_path.is_file() else \
                f"#{int(prepared.shard_starts[shard_index]) + protein} of the {split} split"
            raise DataError(
                f"data.path={data_path}: record {record} has the letter {letter}, which the "
                f"vocabulary of checkpoint={source} lacks (it lacks {''.join(letters)}): "
                "remove those records or replace the letter")
