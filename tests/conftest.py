"""Fixtures every test shares."""

from __future__ import annotations

import logging
import signal

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small tensors on a shared machine: one thread per test process avoids oversubscription
    (pytest-xdist runs one process per core)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _loggers() -> list[logging.Logger]:
    return [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]


@pytest.fixture(autouse=True)
def _logging_left_as_found():
    """Each test leaves logging as it found it. A handler added during a test (Hydra's job
    logging, a library imported for the first time) holds that test's captured stderr, which
    is closed afterwards: a later test's log line would print a "Logging error" traceback."""
    before = {id(logger): (list(logger.handlers), logger.level) for logger in _loggers()}
    yield
    for logger in _loggers():
        if id(logger) in before:
            logger.handlers[:], level = before[id(logger)]
            logger.setLevel(level)
        else:
            for handler in list(logger.handlers):
                if getattr(getattr(handler, "stream", None), "closed", False):
                    logger.removeHandler(handler)


_SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2]


@pytest.fixture(autouse=True)
def _signal_handlers_left_as_found():
    """Each test leaves the process's signal handlers as it found them: a handler that a
    training run (or Lightning) left behind would be inherited by every process a later test
    forks."""
    before = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    yield
    for signum, handler in before.items():
        if signal.getsignal(signum) is not handler and handler is not None:
            signal.signal(signum, handler)


@pytest.fixture(autouse=True)
def _no_hydra_run_left_behind():
    """A command run in-process leaves Hydra's run config set; the next test of the same worker
    would then look like a Hydra run (``protperf.cli.typed`` reads its overrides)."""
    from hydra.core.hydra_config import HydraConfig

    yield
    HydraConfig.instance().cfg = None
