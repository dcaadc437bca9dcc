"""What the embed / score / generate apps share: their config schemas in Hydra's store,
the checkpoint loading, and one-line error reporting."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from protperf.data.fasta import FastaFormatError
from protperf.errors import ConfigError
from protperf.inference.errors import InferenceInputError
from protperf.model.checkpoint import CheckpointMismatchError

# Errors of the user's input: reported as one line ``error: ...``, exit status 2.
USER_ERRORS = (
    ConfigError, CheckpointMismatchError, FileNotFoundError, FastaFormatError,
    InferenceInputError,
)


def register_inference_configs() -> None:
    """Store ``embed_schema``, ``score_schema`` and ``generate_schema`` (idempotent)."""
    from protperf.app.embed import EmbedConfig
    from protperf.app.generate import GenerateConfig
    from protperf.app.score import ScoreConfig

    store = ConfigStore.instance()
    store.store(name="embed_schema", node=EmbedConfig)
    store.store(name="score_schema", node=ScoreConfig)
    store.store(name="generate_schema", node=GenerateConfig)


def run_app(run: Callable[[Any], Any], cfg: DictConfig) -> Any:
    """``run(config object)``; a user error prints one line to stderr and exits with 2."""
    try:
        return run(OmegaConf.to_object(cfg))
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def load_checkpoint_model(path: str, device: str):
    """The checkpoint's network in eval mode on ``device``."""
    from protperf.inference.loading import load_model

    return load_model(path, device)
