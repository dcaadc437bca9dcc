"""What an HF model directory holds besides weights: ``config.json`` and ``vocab.txt``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from protperf.attention.config import AttentionConfig
from protperf.checkpoint.layouts import ATTN_IMPLEMENTATION, PERFORMER_SETTINGS_KEY
from protperf.errors import ConfigError, PretrainedSourceError


def read_config(directory: Path) -> dict[str, Any]:
    """``config.json`` of an HF model directory as a dict (never evaluated)."""
    path = directory / "config.json"
    if not path.is_file():
        raise PretrainedSourceError(f"{directory} has no config.json (not an HF model directory)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PretrainedSourceError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise PretrainedSourceError(f"{path} does not hold a JSON object")
    return config


def read_vocab(directory: Path, vocab_size: int, path: Path | None = None
               ) -> tuple[list[str], Path]:
    """The tokens of ``vocab.txt`` (one per line, id = line number, as transformers reads it;
    ``path`` if given, else the directory's) and its path; more tokens than the config's
    ``vocab_size`` is an error."""
    if path is None:
        path = directory / "vocab.txt"
        if not path.is_file():
            raise PretrainedSourceError(
                f"{directory} has no vocab.txt (the tokens of the model; give one with --vocab)")
    elif not path.is_file():
        raise PretrainedSourceError(f"vocabulary file {path} does not exist")
    tokens = [line.rstrip("\n") for line in path.read_text().splitlines()]
    if len(tokens) > vocab_size:
        raise PretrainedSourceError(
            f"{path} lists {len(tokens)} tokens but config.json has vocab_size={vocab_size}"
        )
    return tokens, path


def setting(config: dict[str, Any], key: str, directory: Path, kind: type = int) -> Any:
    """A mandatory config.json value of the given type, or one line naming it."""
    value = config.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise PretrainedSourceError(
            f"{directory / 'config.json'} has no {kind.__name__} {key!r} (got {value!r})"
        )
    return value


def require_value(config: dict[str, Any], key: str, allowed: tuple, default: Any,
                  directory: Path) -> Any:
    """A config.json value that must be one of ``allowed`` (missing: ``default``)."""
    value = config.get(key, default)
    if value not in allowed:
        raise PretrainedSourceError(
            f"{directory / 'config.json'} has {key}={value!r}; protperf imports only "
            f"{' or '.join(repr(a) for a in allowed)}"
        )
    return value


def saved_attention(config: dict[str, Any], directory: Path) -> AttentionConfig:
    """The attention of an HF directory: a Performer written by ``protperf-export`` (config.json
    names :data:`ATTN_IMPLEMENTATION` and holds its settings), else exact."""
    if config.get("attn_implementation") != ATTN_IMPLEMENTATION:
        return AttentionConfig(kind="exact")
    settings = config.get(PERFORMER_SETTINGS_KEY)
    try:
        attention = AttentionConfig(**settings)
        attention.validate(PERFORMER_SETTINGS_KEY)
    except (TypeError, ConfigError) as error:
        raise PretrainedSourceError(
            f"{directory / 'config.json'} has no valid {PERFORMER_SETTINGS_KEY} for its "
            f"Performer attention ({error})") from None
    return attention
