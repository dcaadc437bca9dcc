"""The one command decorator: Hydra set-up from the packaged configs, typed config, one-line
errors.

A user-facing failure (bad config, bad input, a missing / corrupt / unsafe checkpoint or one
that does not fit, a checkpoint that cannot be written, a run directory in use by another run,
training that produced non-finite numbers) prints
``error: <message naming the key / file>`` and exits with status 2, without a traceback unless
``HYDRA_FULL_ERROR=1``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from protperf.cli.registry import load_config, register_schemas
from protperf.errors import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointWriteError,
    ConfigError,
    DataError,
    InferenceInputError,
    RunDirectoryBusyError,
    TrainingDivergedError,
)

#: Exceptions whose message is the whole story for a user (no traceback needed).
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, CheckpointMismatchError, CheckpointError, CheckpointWriteError, DataError,
    InferenceInputError, FileNotFoundError, RunDirectoryBusyError, TrainingDivergedError,
)
CONFIG_PATH = "pkg://protperf.conf"


def report_user_errors(task: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``task`` so that :data:`USER_ERRORS` become one line on stderr and exit code 2."""

    @functools.wraps(task)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except USER_ERRORS as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {error}", file=sys.stderr, flush=True)
            sys.exit(2)

    return run


def command(config_name: str) -> Callable:
    """Decorator for every Hydra command: ``task(config)`` -> a console entry point ``main()``.

    ``main`` registers the schemas, composes ``protperf/conf/<config_name>.yaml`` with the
    command line, turns it into the validated typed root (:func:`load_config`) and runs
    ``task`` on it with one-line user errors; it returns what ``task`` returns (sweepers).
    Hydra names the job (its log file) after the module of ``task``.
    """

    def decorate(task: Callable[[Any], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def typed(cfg: DictConfig) -> Any:
            return task(load_config(config_name, cfg))

        hydra_task = hydra.main(
            version_base="1.3", config_path=CONFIG_PATH, config_name=config_name
        )(report_user_errors(typed))

        @functools.wraps(task)
        def main() -> Any:
            register_schemas()
            return hydra_task()

        main.run = report_user_errors(typed)  # the task on a composed config (tests)
        return main

    return decorate
