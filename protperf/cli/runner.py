"""The one error runner of every command: exit statuses and one-line errors.

==========  ================================================================================
status      meaning
==========  ================================================================================
0           done
2           a user error (:func:`protperf.errors.user_error_message`): ``error: MESSAGE`` on
            stderr, one line naming the key / file / record, no traceback
1           a bug: Python's traceback
130         interrupted (Ctrl-C)
==========  ================================================================================

``HYDRA_FULL_ERROR=1`` (or ``--debug`` where a command has it) shows the traceback of a user
error too. The same table is in docs/errors.md.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from protperf.errors import user_error_message

USER_ERROR = 2
INTERRUPTED = 130


def full_error() -> bool:
    """True when the user asked for tracebacks (``HYDRA_FULL_ERROR=1``)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def run_command(call: Callable[[], Any], *, debug: bool = False,
                interrupted: str = "interrupted") -> int:
    """The exit status of ``call()``: 0; 2 after printing ``error: MESSAGE`` for a user error
    (re-raised with ``debug`` or ``HYDRA_FULL_ERROR=1``); 130 after printing ``interrupted``
    on Ctrl-C. A bug propagates (traceback, status 1)."""
    try:
        call()
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr, flush=True)
        return INTERRUPTED
    except Exception as error:
        message = user_error_message(error)
        if message is None or debug or full_error():
            raise
        print(f"error: {message}", file=sys.stderr, flush=True)
        return USER_ERROR
    return 0


def report_user_errors(task: Callable[..., Any]) -> Callable[..., Any]:
    """``task`` that exits with :func:`run_command`'s status on a user error or Ctrl-C, and
    otherwise returns what ``task`` returns (a Hydra sweeper's objective)."""

    @functools.wraps(task)
    def run(*args: Any, **kwargs: Any) -> Any:
        result: list[Any] = []
        status = run_command(lambda: result.append(task(*args, **kwargs)))
        if status:
            sys.exit(status)
        return result[0]

    return run


def argparse_status(module: str, argv: Sequence[str] | None = None) -> int:
    """The exit status of the argparse command ``module`` (``protperf.app.<name>``) on
    ``argv``. The module defines ``parse_args(argv) -> Namespace`` and ``run(args)``, and may
    define ``INTERRUPTED`` (the Ctrl-C line); ``args.debug`` shows a user error's traceback.
    The module is imported first (argparse's ``--help`` / usage errors exit from
    ``parse_args``: 0 / 2)."""
    command = importlib.import_module(module)
    args = command.parse_args(argv)
    return run_command(lambda: command.run(args), debug=getattr(args, "debug", False),
                       interrupted=getattr(command, "INTERRUPTED", "interrupted"))


def argparse_entry(module: str) -> Callable[[Sequence[str] | None], None]:
    """The console entry point ``main(argv=None)`` of an argparse command (exits)."""

    def main(argv: Sequence[str] | None = None) -> None:
        sys.exit(argparse_status(module, argv))

    main.__qualname__ = main.__name__ = module.rsplit(".", 1)[-1]
    return main
