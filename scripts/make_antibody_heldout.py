"""Build the held-out antibody set of another origin from alakazam's example AIRR table.

    apt-get download r-cran-alakazam=1.2.1-1      # Debian's package of the CRAN package
    dpkg-deb -x r-cran-alakazam_1.2.1-1_amd64.deb /tmp/alakazam
    python scripts/make_antibody_heldout.py \\
        /tmp/alakazam/usr/lib/R/site-library/alakazam/extdata/example_airr.tsv.gz

The table holds human heavy-chain rearrangements read by repertoire sequencing (Laserson,
Vigneault et al. 2014), not PDB chains like the bundled fine-tune / test sets. Keeps productive,
in-frame rearrangements without a stop codon whose V starts at its first germline base,
translates them, cuts the variable domain at its conserved landmarks
(:func:`protperf.transfer.antibodies.variable_domain`), keeps one domain per CDR3 (clonal
relatives out), drops every domain identical to or sharing a CDR3 with a bundled domain, and
writes ``--count`` of them (evenly spread over the table's order) to
``antibody_heldout.fasta.gz`` (gzip without a timestamp, so a rerun writes the same bytes).
Credits: ``data/README.md``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
from collections.abc import Iterator
from pathlib import Path

from Bio.Seq import Seq

from protperf.data.fasta import open_text
from protperf.resources import RESOURCES
from protperf.transfer.antibodies import (
    FINETUNE_FASTA,
    TEST_FASTA,
    VariableDomain,
    read_antibodies,
    variable_domain,
)


def rearrangements(path: Path) -> Iterator[tuple[str, str]]:
    """``(sequence_id, amino acids from the V start)`` of every productive, in-frame,
    stop-free, forward-strand rearrangement whose V alignment starts at germline base 1."""
    with open_text(path) as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if (row["productive"], row["vj_in_frame"], row["stop_codon"], row["rev_comp"],
                    row["v_germline_start"]) != ("T", "T", "F", "F", "1"):
                continue
            nucleotides = row["sequence"][int(row["v_sequence_start"]) - 1:]
            nucleotides = nucleotides[: len(nucleotides) // 3 * 3]
            yield row["sequence_id"], str(Seq(nucleotides).translate())


def heldout_domains(path: Path, bundled: list[VariableDomain]) -> list[VariableDomain]:
    """Heavy-chain domains of ``path``, one per CDR3 (the first), none identical to or
    sharing a (chain, CDR3) with ``bundled``."""
    taken_sequences = {d.sequence for d in bundled}
    taken_cdr3 = {(d.chain, d.cdr3) for d in bundled}
    out = []
    for sequence_id, protein in rearrangements(path):
        domain = variable_domain(sequence_id, protein)
        if (domain is None or domain.chain != "heavy" or domain.sequence in taken_sequences
                or (domain.chain, domain.cdr3) in taken_cdr3):
            continue
        taken_sequences.add(domain.sequence)
        taken_cdr3.add((domain.chain, domain.cdr3))
        out.append(domain)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("airr_tsv", type=Path, help="alakazam's extdata/example_airr.tsv.gz")
    parser.add_argument("--out-dir", type=Path, default=RESOURCES)
    parser.add_argument("--count", type=int, default=128)
    args = parser.parse_args(argv)
    bundled = [variable_domain(record_id, sequence)
               for path in (FINETUNE_FASTA, TEST_FASTA)
               for record_id, sequence in read_antibodies(path)]
    domains = heldout_domains(args.airr_tsv, [d for d in bundled if d is not None])
    chosen = [domains[i * len(domains) // args.count]
              for i in range(min(args.count, len(domains)))]
    if args.count >= len(domains):
        chosen = domains
    text = "".join(f">{d.record_id} chain={d.chain}\n{d.sequence}\n" for d in chosen)
    path = args.out_dir / "antibody_heldout.fasta.gz"
    path.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
    print(f"{path}: {len(chosen)} heavy-chain domains of {len(domains)} distinct CDR3s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
