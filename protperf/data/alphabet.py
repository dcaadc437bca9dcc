"""The protein alphabet: token ids shared by data, models and checkpoints.

Token ids (part of every checkpoint; never reorder):

    0 <pad>   1 <mask>   2 <cls> (also used as <bos>)   3 <eos>   4 <unk>
    5..24     the 20 standard amino acids  A C D E F G H I K L M N P Q R S T V W Y
    25..29    the non-standard letters     X B Z U O

``vocab_size`` is 30.  Lowercase letters are uppercased when encoding; a trailing ``*``
(stop codon) is stripped by the FASTA reader, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<mask>", "<cls>", "<eos>", "<unk>")
STANDARD_AMINO_ACIDS: str = "ACDEFGHIKLMNPQRSTVWY"
NONSTANDARD_AMINO_ACIDS: str = "XBZUO"


@dataclass(frozen=True)
class Alphabet:
    """Maps residues to token ids and back."""

    special_tokens: tuple[str, ...] = SPECIAL_TOKENS
    standard: str = STANDARD_AMINO_ACIDS
    nonstandard: str = NONSTANDARD_AMINO_ACIDS
    tokens: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "tokens", tuple(self.special_tokens) + tuple(self.standard + self.nonstandard)
        )

    # -- ids of the special tokens ---------------------------------------------------------
    @property
    def pad_id(self) -> int:
        return self.tokens.index("<pad>")

    @property
    def mask_id(self) -> int:
        return self.tokens.index("<mask>")

    @property
    def cls_id(self) -> int:
        return self.tokens.index("<cls>")

    bos_id = cls_id

    @property
    def eos_id(self) -> int:
        return self.tokens.index("<eos>")

    @property
    def unk_id(self) -> int:
        return self.tokens.index("<unk>")

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def num_special(self) -> int:
        return len(self.special_tokens)

    @property
    def standard_ids(self) -> list[int]:
        """Token ids of the 20 standard amino acids, in ``STANDARD_AMINO_ACIDS`` order."""
        return [self.tokens.index(a) for a in self.standard]

    @property
    def residue_ids(self) -> list[int]:
        """Token ids of every amino-acid letter (standard and non-standard)."""
        return [self.tokens.index(a) for a in self.standard + self.nonstandard]
