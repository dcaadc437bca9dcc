"""Train a protein language model: ``python scripts/train.py [model=...] [task=...] [...]``.

The same as the ``protperf-train`` command; options: ``protperf/conf/train.yaml``.
"""

from protperf.cli.entries import train as main

if __name__ == "__main__":
    main()
