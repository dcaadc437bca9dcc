"""What ``protperf-import`` takes, and the check that a source exists (no torch import)."""

from __future__ import annotations

from pathlib import Path

SUPPORTED_SOURCES = (
    "a fair-esm ESM-2 .pt file, an HF EsmForMaskedLM directory or an HF BERT-family masked-LM "
    "directory"
)


def check_source_exists(source: str | Path) -> Path:
    """``source`` as a Path; FileNotFoundError naming it and what is supported if absent."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist ({SUPPORTED_SOURCES})")
    return path
