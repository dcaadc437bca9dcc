"""The errors every layer of protperf may raise and the applications report in one line.

Each message names what was wrong and where (file, line, record, row or config key); the
commands print it as ``error: MESSAGE`` and exit non-zero (:mod:`protperf.cli.command`).
"""

from __future__ import annotations

import errno
import importlib
import types


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


#: Exceptions whose one-line message is the whole story for a user (exit status 2, no
#: traceback): every command reports exactly these (:func:`protperf.cli.runner.run_command`).
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, CheckpointMismatchError, CheckpointError, CheckpointWriteError, DataError,
    InferenceInputError, RunDirectoryBusyError, TrainingDivergedError,
    FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError,
)
#: ``errno`` of an OSError about a path the user chose (full disk, read-only, no permission,
#: no such folder): a user error too, reported as ``PATH: reason``.
USER_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "ENOENT",
                                      "EEXIST", "EISDIR", "ENOTDIR", "ENAMETOOLONG")
    if hasattr(errno, name))


def user_error_message(error: BaseException) -> str | None:
    """The one-line message of a user error (``None``: a bug, whose traceback is shown).
    An OSError about a path is ``PATH: reason`` (``[Errno 28] ...`` is not for users)."""
    if isinstance(error, OSError) and error.errno in USER_ERRNOS and error.filename:
        if type(error).__str__ is OSError.__str__:  # not a protperf message of its own
            return f"{error.filename}: {error.strerror}"
        return str(error)
    if isinstance(error, USER_ERRORS):
        return str(error)
    return None


def require(module: str, needed_for: str) -> types.ModuleType:
    """Import an optional library of the ``pretrained`` extra, or one line saying how."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0].replace("_", "-").replace("esm", "fair-esm")
        raise ConfigError(
            f"{needed_for} needs the {top!r} library: pip install 'protperf[pretrained]'"
        ) from None
