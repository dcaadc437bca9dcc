"""Build the bundled antibody sets from the PDB chains shipped in ANARCI's source distribution.

    pip download anarci==2026.2.13.2 --no-deps --no-binary :all: -d /tmp/x
    tar xzf /tmp/x/anarci-2026.2.13.2.tar.gz -C /tmp/x
    python scripts/make_antibody_sets.py \
        /tmp/x/anarci-2026.2.13.2/Example_scripts_and_sequences/pdb_sequences.fa.txt.gz

Keeps chains whose PDB title names an antibody (and not a T-cell receptor), cuts their
variable domains (:mod:`protperf.transfer.antibodies`), clusters them by PDB entry and CDR3,
and writes about ``--test-fraction`` of the clusters (chosen with ``--seed``) to
``antibody_test.fasta.gz``, the rest to ``antibody_finetune.fasta.gz`` (gzip without a
timestamp, so a rerun writes the same bytes). Credits: ``data/README.md``.
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
import sys
from collections import Counter
from pathlib import Path

from protperf.data.fasta import iter_fasta, open_text
from protperf.resources import RESOURCES
from protperf.transfer.antibodies import cluster_domains, fasta_text, unique_domains

ANTIBODY_TITLE = re.compile(
    r"FAB|ANTIBOD|IMMUNOGLOBULIN|IG[GMAE]|HEAVY|LIGHT|KAPPA|LAMBDA|NANOBOD|VHH|SCFV|BENCE", re.I
)
RECEPTOR_TITLE = re.compile(r"T[- ]?CELL (ANTIGEN )?RECEPTOR|TCR", re.I)


def antibody_records(path: Path):
    """``(record_id, sequence)`` of the chains whose title names an antibody, not a TCR."""
    with open_text(path) as handle:
        for title, sequence in iter_fasta(handle, path):
            if ANTIBODY_TITLE.search(title) and not RECEPTOR_TITLE.search(title):
                yield title.split()[0], sequence


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pdb_fasta", type=Path, help="pdb_sequences.fa.txt.gz of ANARCI")
    parser.add_argument("--out-dir", type=Path, default=RESOURCES)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    domains = unique_domains(antibody_records(args.pdb_fasta))
    clusters = cluster_domains(domains)
    order = list(range(max(clusters) + 1))
    random.Random(args.seed).shuffle(order)
    test_clusters = set(order[: round(args.test_fraction * len(order))])
    for name, keep in (("finetune", False), ("test", True)):
        chosen = [i for i, c in enumerate(clusters) if (c in test_clusters) == keep]
        text = fasta_text([domains[i] for i in chosen], [clusters[i] for i in chosen])
        path = args.out_dir / f"antibody_{name}.fasta.gz"
        path.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
        chains = Counter(domains[i].chain for i in chosen)
        print(f"{path}: {len(chosen)} domains ({chains['heavy']} heavy, {chains['light']} "
              f"light), {len({clusters[i] for i in chosen})} clusters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
