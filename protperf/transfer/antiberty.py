"""AntiBERTy's weights, from the optional ``transfer`` extra (``antiberty==0.1.3``).

That wheel (MIT licence; Ruffolo et al. 2021) ships the trained model under
``antiberty/trained_models/``: ``AntiBERTy_md_smooth/`` (an HF BERT directory: config.json,
pytorch_model.bin) and ``vocab.txt`` one folder up. Later releases download the weights at run
time instead, hence the pin. Nothing here downloads anything.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

#: The extra that installs the weights, and what it pins.
EXTRA = "transfer"
PACKAGE = "antiberty==0.1.3"
MISSING = (f"AntiBERTy's weights are not installed: pip install 'protperf[{EXTRA}]' "
           f"(the {PACKAGE} wheel ships them)")


def antiberty_files() -> tuple[Path, Path]:
    """(the HF model directory, its vocab.txt) inside the installed ``antiberty`` package;
    FileNotFoundError with one line naming the extra when it is not installed."""
    spec = importlib.util.find_spec("antiberty")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(MISSING)
    models = Path(spec.origin).parent / "trained_models"
    directory, vocab = models / "AntiBERTy_md_smooth", models / "vocab.txt"
    if not (directory / "pytorch_model.bin").is_file() or not vocab.is_file():
        raise FileNotFoundError(f"{MISSING}; the installed antiberty has no weights under "
                                f"{models}")
    return directory, vocab


def import_antiberty(out: str | Path) -> Path:
    """Import AntiBERTy as a protperf checkpoint at ``out`` (kept if it already exists)."""
    from protperf.pretrained.importer import import_pretrained

    out = Path(out)
    if not out.exists():
        directory, vocab = antiberty_files()
        import_pretrained(directory, out, vocab=vocab)
    return out
