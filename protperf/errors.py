"""The errors every layer of protperf may raise and the applications report in one line."""

from __future__ import annotations


class ConfigError(ValueError):
    """An invalid configuration value or combination; the message names the key(s)."""


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the alphabet or architecture it is loaded into."""


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable, or holds pickled code; names the file."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, no permission); names the file."""
