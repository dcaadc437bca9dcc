"""Regenerate benchmarks/README.md from the benchmark CSVs (each benchmark script also does).

    python scripts/benchmark_report.py
    python scripts/benchmark_report.py --dir /tmp/b
"""

import sys

from benchmark_log import main

if __name__ == "__main__":
    sys.exit(main())
