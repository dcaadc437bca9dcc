"""What a command's body asks of Hydra at run time (Hydra lives in protperf/cli/ only).

:func:`instantiate_nodes`: objects from the config's ``_target_`` nodes (loggers, callbacks);
:func:`in_sweep`: whether this run is one job of a Hydra sweep (``-m``);
:func:`one_console_handler`: each log line printed once under Hydra's job logging.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any


def instantiate_nodes(nodes: Mapping[str, Any]) -> list[Any]:
    """The objects of the non-empty ``_target_`` nodes of ``nodes``, in order."""
    from hydra.utils import instantiate

    return [instantiate(node) for node in nodes.values() if node]


def in_sweep() -> bool:
    """True inside a job of a Hydra sweep (``-m``); False in a single run or outside Hydra."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


#: Libraries that print to the console with a handler of their own even when the program's
#: root logger has one (Lightning's ``lightning`` logger, whose records also propagate).
OWN_CONSOLE_LOGGERS = ("lightning",)


def one_console_handler() -> None:
    """Under Hydra's job logging (a console and a file handler on the root logger), drop the
    console handlers libraries added for themselves: each log line is printed once, in
    Hydra's format, and also reaches the run's log file."""
    if not logging.getLogger().handlers:
        return
    for name in OWN_CONSOLE_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler and logger.propagate:
                logger.removeHandler(handler)
