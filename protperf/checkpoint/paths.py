"""Does a saved model exist? Answered without torch, so that a command refuses a mistyped
checkpoint path at once (:mod:`protperf.cli.preflight`, ``protperf-export``)."""

from __future__ import annotations

from pathlib import Path

#: The formats ``protperf-export`` writes (:mod:`protperf.checkpoint.export`).
EXPORT_FORMATS = ("protperf", "esm", "bert")
#: Suffixes of files that hold weights: a value ending so is a path, never a hub name.
WEIGHT_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".safetensors")


def missing_checkpoint(path: str | Path) -> FileNotFoundError:
    """The one error for a checkpoint file or export directory that is not there."""
    return FileNotFoundError(f"checkpoint {path} does not exist")


def is_local_path(value: str) -> bool:
    """True when ``value`` can only mean a file or folder here (a weights suffix, or a path
    starting at /, . or ~), not a model name that another loader may resolve."""
    return value.endswith(WEIGHT_SUFFIXES) or value.startswith(("/", ".", "~"))


def check_saved_model(path: str | Path) -> Path:
    """``path`` as a Path if a file or directory is there, else :func:`missing_checkpoint`."""
    path = Path(path)
    if not path.exists():
        raise missing_checkpoint(path)
    return path
