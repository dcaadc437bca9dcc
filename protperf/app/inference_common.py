"""What the embed / score / generate apps share: their config schemas in Hydra's store,
their console entry points, and the one-line report of bad inference input."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from protperf.app.cli import hydra_command, report_user_errors
from protperf.data.fasta import FastaFormatError
from protperf.inference.errors import InferenceInputError

# Bad input records / mutations: one line, exit 2 (the config and checkpoint errors are
# protperf.app.cli.USER_ERRORS, reported the same way).
INPUT_ERRORS = (FastaFormatError, InferenceInputError)


def register_inference_configs() -> None:
    """Store ``embed_schema``, ``score_schema`` and ``generate_schema`` (idempotent)."""
    from protperf.app.embed import EmbedConfig
    from protperf.app.generate import GenerateConfig
    from protperf.app.score import ScoreConfig

    store = ConfigStore.instance()
    store.store(name="embed_schema", node=EmbedConfig)
    store.store(name="score_schema", node=ScoreConfig)
    store.store(name="generate_schema", node=GenerateConfig)


def report_input_errors(task: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``task`` so that :data:`INPUT_ERRORS` become one line on stderr and exit code 2."""

    @functools.wraps(task)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except INPUT_ERRORS as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {error}", file=sys.stderr, flush=True)
            sys.exit(2)

    return run


def run_app(run: Callable[[Any], Any], cfg: DictConfig) -> Any:
    """``run(config object)`` with every user error reported in one line (exit status 2)."""
    return report_user_errors(report_input_errors(lambda c: run(OmegaConf.to_object(c))))(cfg)


def inference_command(config_name: str, run: Callable[[Any], Any]) -> Callable[[], Any]:
    """The console entry point of ``run`` over ``protperf/conf/<config_name>.yaml``."""

    def task(cfg: DictConfig) -> Any:
        return report_input_errors(run)(OmegaConf.to_object(cfg))

    task.__name__ = task.__qualname__ = config_name
    return hydra_command(config_name, register_inference_configs)(task)


def load_checkpoint_model(path: str, device: str):
    """The checkpoint's network in eval mode on ``device``."""
    from protperf.inference.loading import load_model

    return load_model(path, device)
