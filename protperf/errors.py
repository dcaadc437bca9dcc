"""The errors every layer of protperf may raise and the applications report in one line.

Each message names what was wrong and where (file, line, record, row or config key); the
commands print it as ``error: MESSAGE`` and exit non-zero (:mod:`protperf.cli.command`).
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from collections.abc import Callable


class ConfigError(ValueError):
    """An invalid configuration value or combination; the message names the full key(s).

    Raised by the ``validate(prefix)`` method of each config dataclass, where ``prefix`` is
    the dataclass's place in the command's config (``model.attention``, ``data.prepare``, or
    ``""`` for a root): see :func:`config_key`.
    """


def config_key(prefix: str, name: str) -> str:
    """The full key of field ``name`` of a config placed at ``prefix`` ("" = the root)."""
    return f"{prefix}.{name}" if prefix else name


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the alphabet or architecture it is loaded into."""


class DataError(ValueError):
    """Bad input FASTA, an unusable output directory or a damaged prepared directory."""


class InferenceInputError(ValueError):
    """Unusable input to embed / score / generate; the message names the file, row or record."""


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable, or holds pickled code; names the file."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, no permission); names the file."""


class OutputWriteError(CheckpointWriteError):
    """A file or directory could not be written (disk full, read-only file system, no
    permission); the message names it. A :class:`CheckpointWriteError`, so every command that
    reports a checkpoint that cannot be written reports any output in one line."""


class RunDirectoryBusyError(RuntimeError):
    """Another live process trains in this run directory; names its pid and host."""


class TrainingDivergedError(RuntimeError):
    """Training produced a non-finite loss, gradient or weights; names the step."""


class PretrainedSourceError(CheckpointMismatchError):
    """A pretrained model that cannot be imported (unknown architecture, missing weights or
    vocabulary, a tensor that does not fit); the message names the file or tensor."""


def exit_status(call: Callable[[], object], errors: tuple[type[BaseException], ...], *,
                debug: bool, code: int, interrupted: str) -> int:
    """The exit status of an argparse command: 0 after ``call()``; ``code`` after printing
    ``error: <message>`` for one of ``errors`` (the traceback instead with ``debug`` or
    ``HYDRA_FULL_ERROR=1``); 130 after printing ``interrupted`` on Ctrl-C."""
    try:
        call()
    except errors as error:
        if debug or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {error}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    return 0


def require(module: str, needed_for: str) -> types.ModuleType:
    """Import an optional library of the ``pretrained`` extra, or one line saying how."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0].replace("_", "-").replace("esm", "fair-esm")
        raise ConfigError(
            f"{needed_for} needs the {top!r} library: pip install 'protperf[pretrained]'"
        ) from None
