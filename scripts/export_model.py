"""Export a model: ``python scripts/export_model.py CHECKPOINT --out DIR [--format esm]``.

The same as ``protperf-export``; see :mod:`protperf.app.export_model`.
"""

from protperf.cli.entries import export as main

if __name__ == "__main__":
    main()
