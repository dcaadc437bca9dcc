"""Pretrained protein Transformers (ESM-2, BERT-family masked LMs) as protperf checkpoints.

    from protperf.pretrained import import_pretrained
    import_pretrained("esm2_t6_8M_UR50D.pt", "esm2_t6.ckpt")

The libraries of the ``pretrained`` extra (safetensors, fair-esm for its alphabet) are imported
only when a source needs them. See docs/pretrained.md.
"""

from protperf.checkpoint.imported import ImportedModel
from protperf.pretrained.importer import convert, import_pretrained

__all__ = ["ImportedModel", "convert", "import_pretrained"]
