"""Antibody variable domains: cut from PDB chains, clustered, split fine-tune / test; and a
held-out set of another origin (repertoire sequencing).

The bundled sets (``protperf/resources/antibody_{finetune,test}.fasta.gz``, credited in
``data/README.md``) were made by ``scripts/make_antibody_sets.py`` with these functions from
the antibody chains that ANARCI's source distribution ships as examples. Headers read
``>ID chain=heavy|light cluster=N``. ``antibody_heldout.fasta.gz`` (``HELDOUT_FASTA``, made by
``scripts/make_antibody_heldout.py``) holds human heavy chains read by repertoire sequencing
(alakazam's example AIRR table, Laserson et al. 2014), none identical to or sharing a CDR3 with
a bundled PDB domain: it is for scoring only, never for training or choosing defaults.

A variable domain is found by its conserved landmarks (no numbering tool): the framework-4
motif W-G-x-G (heavy) or F-G-x-G (light) after residue 85, ending 11 (heavy, W..S of
WGQGTLVTVSS) or 10 (light, F..K of FGQGTKLEIK) residues after its W/F; the second conserved
cysteine Y-[YFHW]-C before it, which opens CDR3; a cysteine in residues 16-30 (the first
conserved one). Chains of other lengths (scFv oddities, tags) are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from protperf.data.fasta import read_fasta
from protperf.resources import RESOURCES

#: The bundled splits.
FINETUNE_FASTA: Path = RESOURCES / "antibody_finetune.fasta.gz"
TEST_FASTA: Path = RESOURCES / "antibody_test.fasta.gz"
#: Another origin than the two above (repertoire sequencing, not the PDB): scoring only.
HELDOUT_FASTA: Path = RESOURCES / "antibody_heldout.fasta.gz"
#: The bundled sets by name, as the benchmark and its options call them.
SETS: dict[str, Path] = {"test": TEST_FASTA, "heldout": HELDOUT_FASTA}

#: Framework-4 starts: W-G-x-G (heavy), F-G-x-G (light), and the residues they span.
_FR4 = re.compile(r"[WF]G.G")
_FR4_LENGTH = {"heavy": 11, "light": 10}
_CDR3_CYS = re.compile(r"Y[YFHW]C")
_STANDARD = re.compile(r"[ACDEFGHIKLMNPQRSTVWY]+")
#: Accepted domain lengths per chain type (IMGT: ~115-130 heavy, ~105-115 light).
LENGTHS = {"heavy": (105, 140), "light": (95, 125)}


@dataclass(frozen=True)
class VariableDomain:
    """One chain's variable domain: ``chain`` is heavy or light, ``cdr3`` the residues
    between the conserved cysteine and the framework-4 motif."""

    record_id: str
    chain: str
    sequence: str
    cdr3: str


def variable_domain(record_id: str, chain_sequence: str) -> VariableDomain | None:
    """The variable domain at the start of a PDB antibody chain, or None if none is found.

    The first W-G-x-G / F-G-x-G after residue 85 decides heavy (W) or light (F) and ends
    the domain; the domain must be made of the 20 standard amino acids and fit ``LENGTHS``.
    """
    for motif in _FR4.finditer(chain_sequence):
        if motif.start() < 85:
            continue
        chain = "heavy" if motif.group()[0] == "W" else "light"
        end = motif.start() + _FR4_LENGTH[chain]
        domain = chain_sequence[:end]
        low, high = LENGTHS[chain]
        cysteines = list(_CDR3_CYS.finditer(domain, 75, motif.start()))
        if (
            len(domain) < end or not low <= len(domain) <= high
            or not _STANDARD.fullmatch(domain) or "C" not in domain[15:30] or not cysteines
        ):
            return None
        return VariableDomain(record_id, chain, domain, domain[cysteines[-1].end():motif.start()])
    return None


def cluster_domains(domains: list[VariableDomain]) -> list[int]:
    """Cluster ids (0, 1, ... in order of first appearance): domains sharing a PDB entry (the
    first 4 characters of the record id) or a (chain, CDR3) pair are in one cluster, so that
    the two chains of one antibody and the mutants of one antibody never straddle a split."""
    parent = list(range(len(domains)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for index, domain in enumerate(domains):
        for key in (("entry", domain.record_id[:4].lower()), (domain.chain, domain.cdr3)):
            if key in first:
                parent[find(index)] = find(first[key])
            else:
                first[key] = index
    roots: dict[int, int] = {}
    return [roots.setdefault(find(i), len(roots)) for i in range(len(domains))]


def unique_domains(records: Iterable[tuple[str, str]]) -> list[VariableDomain]:
    """Variable domains of ``(record_id, chain_sequence)`` records, each sequence once (the
    first record that has it), in input order."""
    seen: set[str] = set()
    out = []
    for record_id, sequence in records:
        domain = variable_domain(record_id, sequence)
        if domain is not None and domain.sequence not in seen:
            seen.add(domain.sequence)
            out.append(domain)
    return out


def fasta_text(domains: list[VariableDomain], clusters: list[int]) -> str:
    """FASTA with ``chain=`` and ``cluster=`` in the headers, one sequence line per record."""
    return "".join(
        f">{d.record_id} chain={d.chain} cluster={c}\n{d.sequence}\n"
        for d, c in zip(domains, clusters, strict=True)
    )


def read_antibodies(path: str | Path) -> list[tuple[str, str]]:
    """``(record_id, sequence)`` of a bundled antibody FASTA (or any FASTA)."""
    return list(read_fasta(path))


def heldout_sequences() -> list[str]:
    """The held-out heavy chains of another origin (``HELDOUT_FASTA``), in file order."""
    return [sequence for _, sequence in read_fasta(HELDOUT_FASTA)]
