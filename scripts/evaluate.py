"""Evaluate checkpoints: ``python scripts/evaluate.py checkpoints=[a.ckpt,b.ckpt] [...]``.

The same as the ``protperf-evaluate`` command; options: ``protperf/conf/evaluate.yaml``.
"""

from protperf.cli.entries import evaluate as main

if __name__ == "__main__":
    main()
