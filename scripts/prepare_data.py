"""Prepare a FASTA file (default: the bundled sample) into memory-mapped token shards.

    python scripts/prepare_data.py uniref50.fasta.gz --out data/uniref50 --workers 2

The same as the ``protperf-prepare`` command (:mod:`protperf.app.prepare`; ``--help``).
"""

from protperf.app.prepare import console

if __name__ == "__main__":
    console()
