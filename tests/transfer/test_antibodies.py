"""The bundled antibody sets and the functions that made them."""

from __future__ import annotations

import re
from collections import Counter

from protperf.transfer.antibodies import (
    FINETUNE_FASTA,
    HELDOUT_FASTA,
    SETS,
    TEST_FASTA,
    VariableDomain,
    cluster_domains,
    heldout_sequences,
    read_antibodies,
    unique_domains,
    variable_domain,
)

# 1a4j_H of the test set followed by the start of an IgG1 CH1 domain
HEAVY_V = ("QVQLLESGPELKKPGETVKISCKASGYTFTNYGMNWVKQAPGKGLKWMGWINTYTGEPTYADDFKGRFAFSLETSASTAYLQ"
           "INNLKNEDTATYFCVQAERLRRTFDYWGAGTTVTVSS")
LIGHT_V = ("ELVMTQTPLSLPVSLGDQASISCRSSQSLVHSNGNTYLHWYLQKPGQSPKLLIYKVSNRFSGVPDRFSGSGSGTDFTLKISR"
           "VEAEDLGVYFCSQSTHVPPTFGGGTKLEIK")


def headers(path):
    import gzip

    with gzip.open(path, "rt") as handle:
        return [line[1:].split() for line in handle if line.startswith(">")]


def test_bundled_sets_parse_and_match_the_credited_counts():
    for path, total, heavy, light, clusters in ((FINETUNE_FASTA, 2376, 1248, 1128, 1041),
                                                (TEST_FASTA, 303, 157, 146, 116)):
        records = read_antibodies(path)
        fields = headers(path)
        assert len(records) == total
        chains = Counter(field[1] for field in fields)
        assert chains == {"chain=heavy": heavy, "chain=light": light}
        assert len({field[2] for field in fields}) == clusters
        assert all(re.fullmatch("[ACDEFGHIKLMNPQRSTVWY]{95,140}", seq) for _, seq in records)


def test_splits_are_disjoint_by_sequence_entry_and_cluster():
    finetune, test = headers(FINETUNE_FASTA), headers(TEST_FASTA)
    assert not {f[2] for f in finetune} & {f[2] for f in test}
    assert not {f[0][:4] for f in finetune} & {f[0][:4] for f in test}
    sequences = [s for _, s in read_antibodies(FINETUNE_FASTA)]
    held_out = [s for _, s in read_antibodies(TEST_FASTA)]
    assert len(set(sequences)) == len(sequences)
    assert not set(sequences) & set(held_out)


def test_variable_domain_cuts_at_framework_4_and_finds_cdr3():
    heavy = variable_domain("1a4j_H", HEAVY_V + "ASTKGPSVFPLAPSSKSTSGGTAALG")
    assert heavy == VariableDomain("1a4j_H", "heavy", HEAVY_V, "VQAERLRRTFDY")
    light = variable_domain("1a4j_L", LIGHT_V + "RADAAPTVSIFPPSSEQLTSGGASVV")
    assert light == VariableDomain("1a4j_L", "light", LIGHT_V, "SQSTHVPPT")


def test_variable_domain_refuses_what_is_not_one():
    assert variable_domain("x", "ACDEFGHIKL" * 20) is None  # no framework-4 motif
    assert variable_domain("x", HEAVY_V.replace("YFC", "YFA")) is None  # no CDR3 cysteine
    assert variable_domain("x", "X" + HEAVY_V) is None  # a non-standard residue
    assert variable_domain("x", "M" * 40 + HEAVY_V) is None  # too long (a tag)


def test_clusters_join_entries_and_shared_cdr3_and_duplicates_go():
    records = [("1abc_H", HEAVY_V), ("1abc_L", LIGHT_V), ("2xyz_H", HEAVY_V[:-11] + "WGQGTLVTVSS"),
               ("3def_H", "E" + HEAVY_V[1:]), ("4ghi_H", HEAVY_V)]
    domains = unique_domains(records)
    assert [d.record_id for d in domains] == ["1abc_H", "1abc_L", "2xyz_H", "3def_H"]
    # 2xyz shares the CDR3 of 1abc_H, 3def too; 1abc_L shares the entry
    assert cluster_domains(domains) == [0, 0, 0, 0]
    other = unique_domains([("5aaa_H", HEAVY_V.replace("VQAERLRRTFDY", "ARGGYW")), *records])
    assert cluster_domains(other) == [0, 1, 1, 1, 1]


def test_heldout_set_is_another_origin_and_shares_no_sequence_or_cdr3_with_the_bundled():
    sequences = heldout_sequences()
    assert len(sequences) == 128 == len(set(sequences)) and SETS["heldout"] == HELDOUT_FASTA
    assert [f[1] for f in headers(HELDOUT_FASTA)] == ["chain=heavy"] * 128
    assert all(h[0].startswith("GN5SHBT") for h in headers(HELDOUT_FASTA))  # 454 read ids
    domains = [variable_domain(i, s) for i, s in read_antibodies(HELDOUT_FASTA)]
    assert [d.sequence for d in domains] == sequences  # each is a whole variable domain
    assert len({d.cdr3 for d in domains}) == 128
    bundled = [variable_domain(i, s) for path in (FINETUNE_FASTA, TEST_FASTA)
               for i, s in read_antibodies(path)]
    assert not {d.sequence for d in bundled} & set(sequences)
    assert not {d.cdr3 for d in bundled if d.chain == "heavy"} & {d.cdr3 for d in domains}
