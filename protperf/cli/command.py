"""The one command decorator: Hydra set-up from the packaged configs, typed config, one-line
errors.

A user-facing failure (bad config, bad input, a missing / corrupt / unsafe checkpoint or one
that does not fit, a checkpoint that cannot be written, a run directory in use by another run,
training that produced non-finite numbers, a machine without the requested GPU, fla or SLURM)
prints ``error: <message naming the key / file>`` and exits with status 2, without a traceback
unless ``HYDRA_FULL_ERROR=1`` (:mod:`protperf.cli.runner`, the one error runner of every
command); a run directory made for a refused run is removed.

Start-up order (:func:`entry_point`, what the console scripts and ``scripts/*.py`` run): check
the command line (:mod:`protperf.cli.arguments`, the SLURM launcher), compose the config, check
it against the typed root (unknown keys, types, relations), check the machine
(:mod:`protperf.cli.machine`), run the command's preflight (:mod:`protperf.cli.preflight`:
training's run lock and resume checkpoint), and only then import the command's module with its
heavy stack (Lightning, the model), so that a refusal or ``--help`` costs no Lightning import.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from protperf.cli.arguments import check_overrides
from protperf.cli.hydra_runtime import one_console_handler
from protperf.cli.machine import check_launcher, check_machine
from protperf.cli.preflight import preflight
from protperf.cli.registry import load_config, register_schemas
from protperf.cli.runner import report_user_errors, run_command
from protperf.errors import user_error_message
from protperf.runtime.run_dir import discard_unused

CONFIG_PATH = "pkg://protperf.conf"


def run_task(config_name: str, cfg: DictConfig | Any, task: Callable[[Any], Any]) -> Any:
    """The one way a Hydra command runs: ``cfg`` -> the validated typed root (loaded once,
    :func:`load_config`), the machine check, the command's preflight, then ``task(config)``."""
    config = load_config(config_name, cfg)
    check_machine(config)
    with preflight(config_name, config):
        return task(config)


def _imported_task(module: str) -> Callable[[Any], Any]:
    """The task of the command ``module``, imported now (with Lightning and the model)."""
    task = importlib.import_module(module).main.task
    one_console_handler()  # Lightning's own console handler would print every line twice
    return task


def _discarding_refused_run_dir(typed: Callable[[DictConfig], Any]) -> Callable[..., Any]:
    """``typed`` that removes the run directory Hydra made for it when it fails with a user
    error before writing anything there (:func:`discard_unused`)."""

    @functools.wraps(typed)
    def run(cfg: DictConfig) -> Any:
        try:
            return typed(cfg)
        except Exception as error:
            if user_error_message(error) is not None and HydraConfig.initialized():
                discard_unused(HydraConfig.get().runtime.output_dir)
            raise

    return run


def _hydra_main(config_name: str, typed: Callable[[DictConfig], Any]) -> Callable[[], Any]:
    """``main()``: register the schemas, check the command line, run ``typed`` under Hydra."""
    hydra_task = hydra.main(
        version_base="1.3", config_path=CONFIG_PATH, config_name=config_name
    )(report_user_errors(_discarding_refused_run_dir(typed)))

    def main() -> Any:
        register_schemas(config_name)
        argv = sys.argv[1:]
        status = run_command(lambda: (check_overrides(argv), check_launcher(argv)))
        if status:
            sys.exit(status)
        return hydra_task()

    return main


def command(config_name: str) -> Callable:
    """Decorator for every Hydra command: ``task(config)`` -> a console entry point ``main()``.

    ``main`` registers the schemas, checks the command line, composes
    ``protperf/conf/<config_name>.yaml`` with it and runs ``task`` through :func:`run_task`
    with one-line user errors (:mod:`protperf.cli.runner`); it returns what ``task`` returns
    (sweepers). Hydra names the job (its log file) after the module of ``task``.
    ``main.run(cfg)`` runs ``task`` on a composed config (tests); ``main.task`` is ``task``
    itself (:func:`entry_point`).
    """

    def decorate(task: Callable[[Any], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def typed(cfg: DictConfig) -> Any:
            one_console_handler()
            return run_task(config_name, cfg, task)

        main = functools.wraps(task)(_hydra_main(config_name, typed))
        main.run = report_user_errors(typed)
        main.task = task
        return main

    return decorate


def entry_point(config_name: str, module: str) -> Callable[[], Any]:
    """``main()`` of the command ``module`` (``protperf.app.<name>``, whose ``main`` is
    :func:`command`-decorated) that imports ``module`` only once the config, the machine and
    the preflight passed: a config error or ``--help`` never pays for Lightning and the model.
    """

    def typed(cfg: DictConfig) -> Any:
        return run_task(config_name, cfg, lambda config: _imported_task(module)(config))

    typed.__module__ = module  # Hydra names the job (and its log file) after it
    typed.__qualname__ = typed.__name__ = config_name
    return _hydra_main(config_name, typed)
