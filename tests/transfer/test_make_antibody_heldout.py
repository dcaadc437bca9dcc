"""scripts/make_antibody_heldout.py on a small AIRR table written by the test."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

from Bio.Seq import Seq

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import make_antibody_heldout  # noqa: E402

from protperf.transfer.antibodies import VariableDomain, variable_domain  # noqa: E402

HEAVY_V = ("QVQLLESGPELKKPGETVKISCKASGYTFTNYGMNWVKQAPGKGLKWMGWINTYTGEPTYADDFKGRFAFSLETSASTAYLQ"
           "INNLKNEDTATYFCVQAERLRRTFDYWGAGTTVTVSS")
COLUMNS = ["sequence_id", "sequence", "rev_comp", "productive", "vj_in_frame", "stop_codon",
           "v_germline_start", "v_sequence_start"]


def back_translate(protein: str) -> str:
    codons = {str(Seq(c).translate()): c for c in (a + b + d for a in "ACGT" for b in "ACGT"
                                                   for d in "ACGT")}
    return "".join(codons[aa] for aa in protein)


def write_table(path: Path, rows: list[list[str]]) -> None:
    text = "\t".join(COLUMNS) + "\n" + "".join("\t".join(r) + "\n" for r in rows)
    path.write_bytes(gzip.compress(text.encode()))


def test_keeps_productive_full_domains_once_per_cdr3_and_not_the_bundled(tmp_path):
    other = HEAVY_V.replace("VQAERLRRTFDY", "ARGGSYW")
    mutant = "E" + other[1:]  # same CDR3 as `other`: a clonal relative, dropped
    rows = [
        ["r1", "NN" + back_translate(other), "F", "T", "T", "F", "1", "3"],
        ["r2", back_translate(mutant), "F", "T", "T", "F", "1", "1"],
        ["r3", back_translate(HEAVY_V), "F", "T", "T", "F", "1", "1"],  # bundled CDR3
        ["r4", back_translate(other.replace("ARGG", "AKGG")), "F", "F", "T", "F", "1", "1"],
        ["r5", back_translate(other.replace("ARGG", "ARDG")), "F", "T", "T", "F", "7", "1"],
        ["r6", back_translate(other.replace("ARGG", "ARSG")), "F", "T", "T", "F", "1", "1"],
    ]
    table = tmp_path / "airr.tsv.gz"
    write_table(table, rows)
    bundled = [variable_domain("1a4j_H", HEAVY_V)]
    kept = make_antibody_heldout.heldout_domains(table, bundled)
    assert [d.record_id for d in kept] == ["r1", "r6"]
    assert kept[0] == VariableDomain("r1", "heavy", other, "ARGGSYW")
    assert make_antibody_heldout.main([str(table), "--out-dir", str(tmp_path), "--count", "1"]) == 0
    written = gzip.decompress((tmp_path / "antibody_heldout.fasta.gz").read_bytes()).decode()
    assert written == f">r1 chain=heavy\n{other}\n"
