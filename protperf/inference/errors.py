"""The error of bad inference input (records, mutations); the message names file and row."""

from __future__ import annotations


class InferenceInputError(ValueError):
    """Unusable input to embed / score / generate; the message names the file, row or record."""
