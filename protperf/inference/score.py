"""Variant-effect and sequence scores from a masked (MLM) or causal (CLM) checkpoint.

Sequences are encoded ``<cls> residues <eos>`` as in training. With log p the model's
log-softmax and a variant's substitutions (i: wt -> mt):

- ``masked_marginal`` (MLM): sum_i log p(mt_i | x with i masked) - log p(wt_i | same), the
  wild type masked at one position at a time (Meier et al. 2021);
- ``wt_marginal`` (MLM): the same from one unmasked forward pass of the wild type;
- ``pll`` / ``pseudo_ppl`` (MLM): pseudo-log-likelihood sum_i log p(x_i | x with i masked)
  of the variant's whole sequence (one pass per position) and exp(-pll / L);
- ``llr`` (CLM): log p(variant) - log p(wild type), log p(x) = sum over residues and
  ``<eos>`` of log p(x_t | x_<t);
- ``log_likelihood`` / ``perplexity`` (CLM): log p(variant) and exp(-log p / (L + 1)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from protperf.data.alphabet import ALPHABET
from protperf.data.batching import BatchConverter
from protperf.errors import ConfigError, InferenceInputError
from protperf.inference.mutations import Substitution, Variants
from protperf.model.transformer import ProteinLanguageModel

METHODS = {
    "mlm": ("masked_marginal", "wt_marginal", "pll"),
    "clm": ("llr", "log_likelihood"),
}


class Scorer:
    """Scores sequences and substitutions with one model (eval mode), ``batch_size``
    sequences per forward pass."""

    def __init__(self, model: ProteinLanguageModel, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.batch_size = model.eval(), batch_size
        self.objective = "clm" if model.causal else "mlm"
        self.converter = BatchConverter()

    # ----------------------------------------------------------------------- helpers
    def _encode(self, residues: str) -> torch.Tensor:
        """(L + 2,) int64 ``<cls> residues <eos>``."""
        try:
            ids = self.converter.encode(residues)
        except ValueError as error:
            raise InferenceInputError(f"sequence: {error}") from None
        cfg = self.model.config
        if cfg.position == "learned" and len(ids) > cfg.max_position:
            raise InferenceInputError(
                f"a sequence of {len(residues)} residues (+2 specials) does not fit the "
                f"learned positional table (model.max_position={cfg.max_position})")
        return torch.from_numpy(ids)

    @torch.no_grad()
    def _log_probs(self, batch: list[torch.Tensor]) -> torch.Tensor:
        """Padded log-softmax of equal or unequal length token rows: (B, L_max, V)."""
        device = self.model.token_embedding.weight.device
        tokens, mask = self.converter.pad(batch)
        logits = self.model(tokens.to(device), mask.to(device))
        return torch.log_softmax(logits.double(), dim=-1).cpu()

    def _require(self, objective: str, method: str) -> None:
        if self.objective != objective:
            raise ConfigError(
                f"method {method!r} needs a {objective} checkpoint; this one is {self.objective}")

    # ------------------------------------------------------------------------ MLM
    def masked_log_probs(self, residues: str, indices: list[int]) -> dict[int, torch.Tensor]:
        """log p(. | residues with index i masked) at i, for each 0-based i: (V,) float64."""
        self._require("mlm", "masked_marginal")
        tokens = self._encode(residues)
        out: dict[int, torch.Tensor] = {}
        unique = sorted(set(indices))
        for start in range(0, len(unique), self.batch_size):
            group = unique[start : start + self.batch_size]
            batch = []
            for i in group:
                masked = tokens.clone()
                masked[i + 1] = ALPHABET.mask_id
                batch.append(masked)
            log_probs = self._log_probs(batch)
            for row, i in enumerate(group):
                out[i] = log_probs[row, i + 1]
        return out

    def _marginal(self, log_probs_at, substitutions: list[list[Substitution]]) -> np.ndarray:
        tokens = ALPHABET.tokens
        return np.array([
            sum(float(log_probs_at[s.index][tokens.index(s.mutant)]
                      - log_probs_at[s.index][tokens.index(s.wildtype)]) for s in subs)
            for subs in substitutions
        ])

    def masked_marginal(self, wildtype: str, substitutions: list[list[Substitution]]):
        """(N,) masked-marginal scores of N variants of ``wildtype``."""
        indices = [s.index for subs in substitutions for s in subs]
        return self._marginal(self.masked_log_probs(wildtype, indices), substitutions)

    def wildtype_marginal(self, wildtype: str, substitutions: list[list[Substitution]]):
        """(N,) wild-type-marginal scores (one unmasked pass over the wild type)."""
        self._require("mlm", "wt_marginal")
        log_probs = self._log_probs([self._encode(wildtype)])[0, 1:-1]  # (L, V)
        return self._marginal(log_probs, substitutions)

    def pseudo_log_likelihood(self, sequences: list[str]) -> np.ndarray:
        """(N,) sum_i log p(x_i | x with i masked) of each whole sequence."""
        out = []
        for residues in sequences:
            tokens = self._encode(residues)
            log_probs = self.masked_log_probs(residues, list(range(len(residues))))
            out.append(sum(float(log_probs[i][tokens[i + 1]]) for i in range(len(residues))))
        return np.array(out)

    # ------------------------------------------------------------------------ CLM
    def log_likelihood(self, sequences: list[str]) -> np.ndarray:
        """(N,) log p(residues, <eos> | <cls>) of each sequence (CLM)."""
        self._require("clm", "log_likelihood")
        out = []
        for start in range(0, len(sequences), self.batch_size):
            rows = [self._encode(s) for s in sequences[start : start + self.batch_size]]
            log_probs = self._log_probs(rows)
            for row, tokens in enumerate(rows):
                targets = tokens[1:]
                picked = log_probs[row, : len(targets)].gather(-1, targets[:, None])
                out.append(float(picked.sum()))
        return np.array(out)

    # ------------------------------------------------------------------ all methods
    def score_variants(self, variants: Variants, methods: list[str] | None = None):
        """A DataFrame with one column per score (see the module docstring)."""
        methods = list(methods or METHODS[self.objective])
        for method in methods:
            if method not in METHODS[self.objective]:
                raise ConfigError(
                    f"methods: {method!r} is not available for a {self.objective} checkpoint "
                    f"(choose from {', '.join(METHODS[self.objective])})")
        wt, subs, seqs = variants.wildtype, variants.substitutions, variants.sequences
        columns: dict[str, np.ndarray] = {}
        if "masked_marginal" in methods:
            columns["masked_marginal"] = self.masked_marginal(wt, subs)
        if "wt_marginal" in methods:
            columns["wt_marginal"] = self.wildtype_marginal(wt, subs)
        if "pll" in methods:
            pll = self.pseudo_log_likelihood(seqs)
            columns["pll"] = pll
            columns["pseudo_ppl"] = np.exp(-pll / np.array([len(s) for s in seqs]))
        if "llr" in methods or "log_likelihood" in methods:
            ll = self.log_likelihood(seqs)
            if "llr" in methods:
                columns["llr"] = ll - self.log_likelihood([wt])[0]
            if "log_likelihood" in methods:
                columns["log_likelihood"] = ll
                columns["perplexity"] = np.exp(-ll / np.array([len(s) + 1 for s in seqs]))
        return pd.DataFrame(columns, index=variants.table.index)


def spearman_by_method(table: pd.DataFrame, scores: pd.DataFrame, target: str = "DMS_score"):
    """Spearman rho of each score column with ``target`` (a Series indexed by method)."""
    return pd.Series({column: scores[column].corr(table[target], method="spearman")
                      for column in scores.columns})
