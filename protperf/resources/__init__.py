"""Files shipped inside the package: the bundled sample proteome and small reference chains.

Credits and licenses: ``data/README.md`` in the source repository (and ``LICENSE.pyhmmer-MIT``
beside the sample).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

RESOURCES: Path = Path(str(files(__name__)))

#: The bundled sample of real proteins (2,100 proteins of one bacterial proteome).
SAMPLE_FASTA: Path = RESOURCES / "sample.fasta.gz"
