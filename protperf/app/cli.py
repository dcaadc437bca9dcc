"""What every command shares: Hydra set-up from the packaged configs and one-line errors.

A user-facing failure (bad config, bad input, a missing / corrupt / unsafe checkpoint or one
that does not fit, a checkpoint that cannot be written) prints
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

from protperf.app.run_dir import register_resolvers
from protperf.errors import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointWriteError,
    ConfigError,
    DataError,
    InferenceInputError,
)

#: Exceptions whose message is the whole story for a user (no traceback needed).
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, CheckpointMismatchError, CheckpointError, CheckpointWriteError, DataError,
    InferenceInputError, FileNotFoundError,
)
register_resolvers()  # ${protperf_unique_dir:...} in conf/hydra/default.yaml
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


def hydra_command(config_name: str, register: Callable[[], None]) -> Callable:
    """Decorator: ``task(cfg: DictConfig)`` -> a console entry point ``main()`` that registers
    the schemas, composes ``protperf/conf/<config_name>.yaml`` with the command line, and runs
    ``task`` with one-line user errors. ``main`` returns what ``task`` returns (sweepers)."""

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        hydra_task = hydra.main(
            version_base="1.3", config_path=CONFIG_PATH, config_name=config_name
        )(report_user_errors(task))

        @functools.wraps(task)
        def main() -> Any:
            register()
            return hydra_task()

        return main

    return decorate
