"""The one command decorator: Hydra set-up from the packaged configs, typed config, one-line
errors.

A user-facing failure (bad config, bad input, a missing / corrupt / unsafe checkpoint or one
that does not fit, a checkpoint that cannot be written, a run directory in use by another run,
training that produced non-finite numbers, a machine without the requested GPU, fla or SLURM)
prints ``error: <message naming the key / file>`` and exits with status 2, without a traceback
unless ``HYDRA_FULL_ERROR=1``.

Start-up order (:func:`entry_point`, what the console scripts and ``scripts/*.py`` run): compose
the config, check it against the typed root (unknown keys, types, relations), check the machine
(:mod:`protperf.cli.machine`), and only then import the command's module with its heavy stack
(Lightning, the model), so that a config error or ``--help`` costs no Lightning import.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from protperf.cli.machine import check_launcher, check_machine
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


def _hydra_main(config_name: str, typed: Callable[[DictConfig], Any]) -> Callable[[], Any]:
    """``main()``: register the schemas, check the launcher, run ``typed`` under Hydra."""
    hydra_task = hydra.main(
        version_base="1.3", config_path=CONFIG_PATH, config_name=config_name
    )(report_user_errors(typed))

    def main() -> Any:
        register_schemas(config_name)
        report_user_errors(check_launcher)(sys.argv[1:])
        return hydra_task()

    return main


def command(config_name: str) -> Callable:
    """Decorator for every Hydra command: ``task(config)`` -> a console entry point ``main()``.

    ``main`` registers the schemas, composes ``protperf/conf/<config_name>.yaml`` with the
    command line, turns it into the validated typed root (:func:`load_config`), checks the
    machine (:func:`check_machine`) and runs ``task`` on it with one-line user errors; it
    returns what ``task`` returns (sweepers). Hydra names the job (its log file) after the
    module of ``task``. ``main.run(cfg)`` runs ``task`` on a composed config (tests);
    ``main.task`` is ``task`` itself (:func:`entry_point`).
    """

    def decorate(task: Callable[[Any], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def typed(cfg: DictConfig) -> Any:
            config = load_config(config_name, cfg)
            check_machine(config)
            return task(config)

        main = functools.wraps(task)(_hydra_main(config_name, typed))
        main.run = report_user_errors(typed)
        main.task = task
        return main

    return decorate


def entry_point(config_name: str, module: str) -> Callable[[], Any]:
    """``main()`` of the command ``module`` (``protperf.app.<name>``, whose ``main`` is
    :func:`command`-decorated) that imports ``module`` only once the config and the machine
    passed their checks: a config error or ``--help`` never pays for Lightning and the model.
    """

    def typed(cfg: DictConfig) -> Any:
        config = load_config(config_name, cfg)
        check_machine(config)
        return importlib.import_module(module).main.task(config)

    typed.__module__ = module  # Hydra names the job (and its log file) after it
    typed.__qualname__ = typed.__name__ = config_name
    return _hydra_main(config_name, typed)
