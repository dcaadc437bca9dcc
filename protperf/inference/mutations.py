"""Mutations in the ProteinGym convention: ``A23G`` or ``A23G:K45R`` (1-based positions).

A table of variants (``mutant`` column, optional ``mutated_sequence`` and ``DMS_score``) is
checked against the wild type: a wild-type letter that does not match the sequence, a
position out of range or a malformed string is an :class:`InferenceInputError` naming the
file, line and mutant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from protperf.data.alphabet import NONSTANDARD_AMINO_ACIDS, STANDARD_AMINO_ACIDS
from protperf.errors import InferenceInputError

_SUBSTITUTION = re.compile(r"^([A-Z])(\d+)([A-Z])$")


@dataclass(frozen=True)
class Substitution:
    """One substitution: wild-type letter, 1-based position, mutant letter."""

    wildtype: str
    position: int
    mutant: str

    @property
    def index(self) -> int:
        """0-based index into the residue string."""
        return self.position - 1


def parse_mutant(text: str) -> list[Substitution]:
    """``'A23G:K45R'`` -> [Substitution('A', 23, 'G'), Substitution('K', 45, 'R')].

    Raises ValueError (no location; :func:`read_variants` adds it) for a malformed string,
    position 0, a mutant letter that is no amino acid (``A23J``), or the same position twice.
    """
    parts = str(text).strip().split(":")
    out = []
    for part in parts:
        match = _SUBSTITUTION.match(part.strip())
        if match is None:
            raise ValueError(
                f"mutant {text!r}: {part!r} is not a substitution like 'A23G' "
                "(wild-type letter, 1-based position, mutant letter; ':' between several)")
        wildtype, position, mutant = match.group(1), int(match.group(2)), match.group(3)
        if position < 1:
            raise ValueError(f"mutant {text!r}: positions are 1-based, got {position}")
        if mutant not in STANDARD_AMINO_ACIDS + NONSTANDARD_AMINO_ACIDS:
            raise ValueError(
                f"mutant {text!r}: {mutant!r} is not an amino-acid letter (one of "
                f"{STANDARD_AMINO_ACIDS} or {NONSTANDARD_AMINO_ACIDS})")
        out.append(Substitution(wildtype, position, mutant))
    positions = [s.position for s in out]
    if len(set(positions)) != len(positions):
        raise ValueError(f"mutant {text!r}: a position is mutated twice")
    return out


def check_against(substitutions: list[Substitution], wildtype: str, text: str) -> None:
    """Raise ValueError if a position is outside ``wildtype`` or its letter differs."""
    for s in substitutions:
        if s.position > len(wildtype):
            raise ValueError(
                f"mutant {text!r}: position {s.position} is past the end of the "
                f"{len(wildtype)}-residue wild type")
        if wildtype[s.index] != s.wildtype:
            raise ValueError(
                f"mutant {text!r}: the wild type has {wildtype[s.index]!r} at position "
                f"{s.position}, not {s.wildtype!r}")


def apply_mutations(wildtype: str, substitutions: list[Substitution]) -> str:
    """The mutated residue string (substitutions checked by :func:`check_against`)."""
    residues = list(wildtype)
    for s in substitutions:
        residues[s.index] = s.mutant
    return "".join(residues)


def revert_mutations(mutated: str, substitutions: list[Substitution]) -> str:
    """The wild type implied by a mutated sequence and its substitutions."""
    residues = list(mutated)
    for s in substitutions:
        residues[s.index] = s.wildtype
    return "".join(residues)


@dataclass
class Variants:
    """Parsed variants: the table, its substitutions and sequences, and the wild type."""

    table: pd.DataFrame
    substitutions: list[list[Substitution]]
    sequences: list[str]
    wildtype: str


def read_variants(path: str | Path, wildtype: str | None = None) -> Variants:
    """Read a ProteinGym-style CSV and check every row against the wild type.

    Without ``wildtype`` the table needs a ``mutated_sequence`` column; the wild type is
    then reconstructed from the first row and every other row must agree with it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mutations file {path} does not exist")
    try:
        table = pd.read_csv(path, dtype={"mutant": str})
    except pd.errors.EmptyDataError:
        raise InferenceInputError(
            f"{path}: empty file (expected a CSV with a 'mutant' column)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        reason = str(error).strip().splitlines()[-1]
        raise InferenceInputError(f"{path}: not a readable CSV file ({reason})") from None
    if "mutant" not in table.columns:
        raise InferenceInputError(f"{path}: no 'mutant' column (columns: {list(table.columns)})")
    has_sequences = "mutated_sequence" in table.columns
    if wildtype is None and not has_sequences:
        raise InferenceInputError(
            f"{path}: give a wild-type FASTA (wildtype=...) or a 'mutated_sequence' column")
    substitutions, sequences = [], []
    for row, text in enumerate(table["mutant"].tolist()):
        where = f"{path}: line {row + 2}"  # line 1 is the header
        try:
            subs = parse_mutant(text)
            if has_sequences:
                mutated = str(table["mutated_sequence"].iloc[row]).strip().upper()
                implied = revert_mutations(mutated, subs) if all(
                    s.position <= len(mutated) for s in subs) else None
                if wildtype is None and implied is not None:
                    wildtype = implied
                check_against(subs, wildtype, text)
                if mutated != apply_mutations(wildtype, subs):
                    raise ValueError(
                        f"mutant {text!r}: mutated_sequence is not the wild type with these "
                        "substitutions")
            else:
                check_against(subs, wildtype, text)
                mutated = apply_mutations(wildtype, subs)
        except ValueError as error:
            raise InferenceInputError(f"{where}: {error}") from None
        substitutions.append(subs)
        sequences.append(mutated)
    if not sequences:
        raise InferenceInputError(f"{path}: no variants")
    return Variants(table, substitutions, sequences, wildtype)
