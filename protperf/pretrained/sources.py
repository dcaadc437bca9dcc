"""What ``protperf-import`` takes, and the check that a source spelled as a path exists (no
torch import: the command refuses a mistyped path at once)."""

from __future__ import annotations

import os
from pathlib import Path

NAME_EXAMPLES = ("a Hugging Face repo id such as facebook/esm2_t6_8M_UR50D or a fair-esm name "
                 "such as esm2_t6_8M_UR50D")


def looks_like_path(source: str) -> bool:
    """A source spelled as a path (absolute, ./, ~, or a file suffix), never a name."""
    return (source.startswith((".", "/", "~", os.sep)) or Path(source).suffix in
            (".pt", ".ckpt", ".bin", ".safetensors"))


def check_local_source(source: str | Path) -> None:
    """FileNotFoundError naming ``source`` if it is spelled as a path (or is a Path) and
    nothing is there; a name is left to :func:`protperf.pretrained.hub.resolve_source`."""
    if Path(source).expanduser().exists():
        return
    if isinstance(source, Path) or looks_like_path(str(source)):
        raise FileNotFoundError(f"{source} does not exist ({NAME_EXAMPLES}, or a local path)")
