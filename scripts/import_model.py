"""Import a pretrained protein Transformer (fair-esm ESM-2 .pt, HF ESM or BERT directory).

    python scripts/import_model.py esm2_t6_8M_UR50D.pt --out esm2_t6.ckpt

The same as the ``protperf-import`` command (:mod:`protperf.app.import_model`; ``--help``).
"""

from protperf.cli.entries import import_model as main

if __name__ == "__main__":
    main()
