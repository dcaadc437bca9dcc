"""Which tokens enter the 20 x 20 amino-acid matrices, and a tally of those that do not.

Only the 20 standard amino acids (``ACDEFGHIKLMNPQRSTVWY``, token ids 5..24) are rows and
columns of a similarity matrix.  The non-standard letters X B Z U O (ids 25..29) and the special
tokens (<cls>, <eos>, <mask>, <unk>) stay in the model's input -- they receive and give
attention -- but are excluded from the 20 x 20 matrices and counted in :class:`TokenTally`.
Padding (positions where ``attention_mask`` is False) is neither a query nor a key and is not
counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from protperf.data.alphabet import ALPHABET, Alphabet

AMINO_ACIDS: str = ALPHABET.standard  # "ACDEFGHIKLMNPQRSTVWY": row/column order everywhere
NUM_AMINO_ACIDS = len(AMINO_ACIDS)


def _index_table(alphabet: Alphabet) -> torch.Tensor:
    table = torch.full((alphabet.vocab_size,), -1, dtype=torch.long)
    table[torch.tensor(alphabet.standard_ids)] = torch.arange(len(alphabet.standard))
    return table


def residue_index(
    tokens: torch.Tensor, attention_mask: torch.Tensor | None = None, alphabet: Alphabet = ALPHABET
) -> torch.Tensor:
    """Map token ids to amino-acid indices.

    tokens: (B, L) token ids; attention_mask: (B, L) bool, True at real tokens.
    Returns (B, L) long: 0..19 in ``AMINO_ACIDS`` order, -1 for every other token and padding.
    """
    if tokens.dtype.is_floating_point:
        raise TypeError(f"tokens must be integer token ids, got dtype {tokens.dtype}")
    bad = (tokens < 0) | (tokens >= alphabet.vocab_size)
    if bad.any():
        value = int(tokens[bad][0])
        raise ValueError(f"token id {value} is outside the alphabet (0..{alphabet.vocab_size - 1})")
    index = _index_table(alphabet).to(tokens.device)[tokens]
    if attention_mask is not None:
        index = index.masked_fill(~attention_mask.bool(), -1)
    return index


def one_hot_residues(index: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """index: (B, L) from :func:`residue_index` -> (B, L, 20) one-hot, all-zero rows for -1."""
    one_hot = torch.zeros(*index.shape, NUM_AMINO_ACIDS, dtype=dtype, device=index.device)
    valid = index >= 0
    one_hot[valid] = torch.eye(NUM_AMINO_ACIDS, dtype=dtype, device=index.device)[index[valid]]
    return one_hot


@dataclass
class TokenTally:
    """Counts of every real (non-padding) token seen, by letter or special-token name."""

    alphabet: Alphabet = ALPHABET
    counts: np.ndarray = field(default=None)  # type: ignore[assignment]  # (vocab,) int64
    rows: int = 0  # input rows (proteins, or packed windows)

    def __post_init__(self) -> None:
        if self.counts is None:
            self.counts = np.zeros(self.alphabet.vocab_size, dtype=np.int64)

    def update(self, tokens: torch.Tensor, attention_mask: torch.Tensor | None = None) -> None:
        """tokens: (B, L) ids; attention_mask: (B, L) bool (None: every position is real)."""
        real = tokens if attention_mask is None else tokens[attention_mask.bool()]
        self.counts += np.bincount(
            real.reshape(-1).cpu().numpy(), minlength=self.alphabet.vocab_size
        ).astype(np.int64)
        self.rows += int(tokens.shape[0])

    def as_dict(self) -> dict:
        """{"rows", "standard": {aa: n}, "nonstandard": {letter: n}, "special": {name: n}}."""
        tokens = self.alphabet.tokens
        special = {tokens[i]: int(self.counts[i]) for i in range(self.alphabet.num_special)}
        special.pop("<pad>", None)
        standard_ids = self.alphabet.standard_ids
        nonstandard_ids = [tokens.index(a) for a in self.alphabet.nonstandard]
        return {
            "rows": self.rows,
            "standard": {tokens[i]: int(self.counts[i]) for i in standard_ids},
            "nonstandard": {tokens[i]: int(self.counts[i]) for i in nonstandard_ids},
            "special": special,
            "excluded_total": int(sum(special.values()) + self.counts[nonstandard_ids].sum()),
        }
