"""Shared fixtures for the analysis tests: Agg backend, token batches with excluded tokens."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from protperf.data.alphabet import ALPHABET  # noqa: E402


def encode(text: str) -> list[int]:
    """Letters -> ids; '^' is <cls>, '$' <eos>, '?' <unk>, '#' <mask>."""
    specials = {"^": ALPHABET.cls_id, "$": ALPHABET.eos_id, "?": ALPHABET.unk_id,
                "#": ALPHABET.mask_id}
    return [specials[c] if c in specials else ALPHABET.tokens.index(c) for c in text]


def batch(*texts: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (tokens (B, L), attention_mask (B, L) bool)."""
    length = max(len(t) for t in texts)
    tokens = torch.full((len(texts), length), ALPHABET.pad_id, dtype=torch.long)
    mask = torch.zeros(len(texts), length, dtype=torch.bool)
    for row, text in enumerate(texts):
        tokens[row, : len(text)] = torch.tensor(encode(text))
        mask[row, : len(text)] = True
    return tokens, mask


@pytest.fixture
def mixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Three sequences with specials, X B Z U O and padding."""
    return batch(
        "^MKTAYIAKQRQISFVKSHFSRQ$",
        "^ACDXEFGBHIKZLMNUPQROSTVWY$",
        "^GGWWCCA?#P$",
    )
