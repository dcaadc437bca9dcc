"""The error the data pipeline raises for bad input, output or prepared directories.

Every message is one line naming the file (and line, record or key); the scripts print it as
``error: MESSAGE`` and exit non-zero.
"""

from __future__ import annotations


class DataError(ValueError):
    """Bad input FASTA, an unusable output directory or a damaged prepared directory."""
