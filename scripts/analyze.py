"""Attention analysis of a checkpoint: ``python scripts/analyze.py checkpoint=path/last.ckpt``.

The same as the ``protperf-analyze`` command; options: ``protperf/conf/analyze.yaml``.
"""

from protperf.cli.entries import analyze as main

if __name__ == "__main__":
    main()
