"""Attention analysis of a checkpoint: ``python scripts/analyze.py checkpoint=path/last.ckpt``.

The same as the ``protperf-analyze`` command; options: ``protperf/conf/analyze.yaml``.
"""

from protperf.app.analyze import main

if __name__ == "__main__":
    main()
