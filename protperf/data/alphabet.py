"""The protein alphabet: token ids shared by data, models and checkpoints.

Token ids (part of every checkpoint; never reorder):

    0 <pad>   1 <mask>   2 <cls> (also used as <bos>)   3 <eos>   4 <unk>
    5..24     the 20 standard amino acids  A C D E F G H I K L M N P Q R S T V W Y
    25..29    the non-standard letters     X B Z U O

``vocab_size`` is 30.  Lowercase letters are uppercased when encoding; a trailing ``*``
(stop codon) is stripped by the FASTA reader, not here.  The letter ``J`` (Leu/Ile, rare in
UniProt) has no token of its own and is encoded as ``<unk>``; any other byte is invalid.

Fast encoding uses a 256-entry byte table (``ENCODE_TABLE``) with ``bytes.translate``:
invalid bytes map to ``INVALID_TOKEN`` (255), which the FASTA pipeline looks for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<mask>", "<cls>", "<eos>", "<unk>")
STANDARD_AMINO_ACIDS: str = "ACDEFGHIKLMNPQRSTVWY"
NONSTANDARD_AMINO_ACIDS: str = "XBZUO"
#: Bumped whenever token ids or the encoding rules change; recorded in every manifest.
ALPHABET_VERSION: str = "protperf-alphabet-1"
#: Value of ``ENCODE_TABLE`` for bytes that are not amino-acid letters.
INVALID_TOKEN: int = 255


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

    # -- encoding ------------------------------------------------------------------------
    def encode(self, sequence: str) -> np.ndarray:
        """Encode a residue string to token ids ``(L,)`` uint8 (no specials: those are added by
        :class:`protperf.data.batching.BatchConverter`).

        Raises ``ValueError`` naming the first invalid character and its 0-based position.
        """
        raw = sequence.encode("ascii", errors="replace")
        tokens = np.frombuffer(raw.translate(ENCODE_TABLE), dtype=np.uint8)
        bad = np.flatnonzero(tokens == INVALID_TOKEN)
        if bad.size:
            pos = int(bad[0])
            raise ValueError(
                f"invalid residue {sequence[pos]!r} at position {pos} "
                "(expected an amino-acid letter)"
            )
        return tokens.copy()

    def decode(self, ids, strip_special: bool = True) -> str:
        """Inverse of :meth:`encode`: ids ``(L,)`` -> string (special tokens dropped or
        written as ``<name>``)."""
        out = []
        for i in np.asarray(ids).tolist():
            token = self.tokens[i]
            if len(token) > 1 and strip_special:
                continue
            out.append(token)
        return "".join(out)


#: The alphabet (one instance; every layer uses this one).
ALPHABET = Alphabet()


def _build_encode_table(alphabet: Alphabet = ALPHABET) -> bytes:
    table = bytearray([INVALID_TOKEN]) * 256
    for letter in alphabet.standard + alphabet.nonstandard:
        token_id = alphabet.tokens.index(letter)
        table[ord(letter)] = token_id
        table[ord(letter.lower())] = token_id
    table[ord("J")] = table[ord("j")] = alphabet.unk_id
    return bytes(table)


#: ``bytes.translate`` table: ASCII byte -> token id (or ``INVALID_TOKEN``).
ENCODE_TABLE: bytes = _build_encode_table()
