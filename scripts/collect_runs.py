"""Collect a sweep's runs: ``python scripts/collect_runs.py multirun/<time> [--metric ppl]``.

The same as the ``protperf-collect-runs`` command (:mod:`protperf.app.collect_runs`).
"""

from protperf.app.collect_runs import run

if __name__ == "__main__":
    run()
