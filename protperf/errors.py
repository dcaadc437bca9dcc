"""The errors every layer of protperf may raise and the applications report in one line."""

from __future__ import annotations


class ConfigError(ValueError):
    """An invalid configuration value or combination; the message names the key(s)."""


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the alphabet or architecture it is loaded into."""
