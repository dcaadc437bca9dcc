"""Prepare a FASTA file (default: the bundled sample) into memory-mapped token shards.

    python scripts/prepare_data.py uniref50.fasta.gz --out data/uniref50 --workers 2

The same as the ``protperf-prepare`` command (:mod:`protperf.app.prepare`; ``--help``).
"""

from protperf.cli.entries import prepare as main

if __name__ == "__main__":
    main()
