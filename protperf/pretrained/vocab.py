"""A source model's vocabulary mapped onto protperf's alphabet by symbol.

Source tokens are matched by symbol, with BERT's bracketed specials read as protperf's
(:data:`SYMBOL_ALIASES`). The 20 standard amino acids must all be present. Source tokens
protperf has no id for (ESM's ``.``, ``-``, ``<null_1>``, BERT's ``[unused*]``) are dropped
with their rows. protperf tokens the source lacks are never predicted: their LM-head bias is
:data:`UNPREDICTED_LOGIT` (their softmax probability is 0 in float32 / bfloat16), and as
inputs they embed like the source's unknown token (what the source's tokenizer does with a
symbol it does not know), or as zeros if it has none.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from protperf.data.alphabet import ALPHABET, STANDARD_AMINO_ACIDS
from protperf.errors import PretrainedSourceError

#: Source symbol -> protperf symbol where they are spelled differently (BERT vocabularies).
SYMBOL_ALIASES = {
    "[PAD]": "<pad>", "[MASK]": "<mask>", "[CLS]": "<cls>", "[SEP]": "<eos>", "[UNK]": "<unk>",
}
#: LM-head bias of protperf tokens the source cannot predict (a large finite negative logit).
UNPREDICTED_LOGIT = -1e4


@dataclass(frozen=True)
class VocabularyMap:
    """Where each protperf token comes from in the source vocabulary.

    source_ids: (30,) long, the source row of each protperf token id, -1 where it has none.
    dropped: source tokens protperf has no id for, in source order.
    missing: protperf tokens the source lacks (never predicted), in protperf order.
    unk_source_id: the source row of its unknown token, or None.
    """

    source_ids: torch.Tensor
    dropped: tuple[str, ...]
    missing: tuple[str, ...]
    unk_source_id: int | None

    def embedding(self, weight: torch.Tensor) -> torch.Tensor:
        """Source embedding rows (V_src, D) -> protperf's (30, D); a missing token gets the
        source's unknown-token row (zeros if it has none)."""
        rows = self.source_ids.clone()
        fill = -1 if self.unk_source_id is None else self.unk_source_id
        rows[rows < 0] = fill
        out = weight[rows.clamp_min(0)].clone()
        out[rows < 0] = 0.0
        return out

    def output_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """An untied LM-head weight (V_src, D) -> (30, D), zero rows for missing tokens."""
        out = weight[self.source_ids.clamp_min(0)].clone()
        out[self.source_ids < 0] = 0.0
        return out

    def output_bias(self, bias: torch.Tensor) -> torch.Tensor:
        """LM-head bias (V_src,) -> (30,), :data:`UNPREDICTED_LOGIT` for missing tokens."""
        out = bias[self.source_ids.clamp_min(0)].clone()
        out[self.source_ids < 0] = UNPREDICTED_LOGIT
        return out


def map_vocabulary(tokens: list[str], source: str) -> VocabularyMap:
    """Match the source's tokens (in id order) to protperf's alphabet by symbol.

    ``source`` names the file the vocabulary came from, for the error when an amino acid is
    missing."""
    alphabet = ALPHABET
    position = {}
    for source_id, token in enumerate(tokens):
        symbol = SYMBOL_ALIASES.get(token, token)
        if symbol in alphabet.tokens and symbol not in position:
            position[symbol] = source_id
    absent = [a for a in STANDARD_AMINO_ACIDS if a not in position]
    if absent:
        raise PretrainedSourceError(
            f"the vocabulary of {source} lacks the amino acid(s) {''.join(absent)} "
            f"(protperf needs all 20 of {STANDARD_AMINO_ACIDS} as tokens of their own)"
        )
    source_ids = torch.tensor([position.get(t, -1) for t in alphabet.tokens], dtype=torch.long)
    used = set(position.values())
    return VocabularyMap(
        source_ids=source_ids,
        dropped=tuple(t for i, t in enumerate(tokens) if i not in used),
        missing=tuple(t for t in alphabet.tokens if t not in position),
        unk_source_id=position.get("<unk>"),
    )
