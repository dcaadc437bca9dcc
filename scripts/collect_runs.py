"""Collect a sweep's runs: ``python scripts/collect_runs.py multirun/<time> [--metric ppl]``.

The same as the ``protperf-collect-runs`` command (:mod:`protperf.app.collect_runs`).
"""

from protperf.cli.entries import collect_runs as main

if __name__ == "__main__":
    main()
