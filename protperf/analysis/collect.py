"""Run a model over batches and accumulate every layer's attention into 20 x 20 sums.

Exact layers: the layer's softmax rows (``attention_weight_rows``), C query rows at a time
(O(B H C L) memory).  Performer layers: the layer's features q', k' and the linear-time
aggregate (no L x L matrix; Vig counts, if enabled, form C x L blocks).  Identity layers: their
(identity) attention matrix.
"""

from __future__ import annotations

import torch
from torch import nn

from protperf.analysis.attention_maps import (
    PERFORMER_KINDS,
    attention_modules,
    layer_inputs,
    run_model,
)
from protperf.analysis.similarity import SimilarityAccumulator, SimilarityTotals


class ModelAttentionCollector:
    """Accumulates a model's attention over any number of batches (memory independent of it).

    Args:
        model: a module containing ``MultiHeadAttention`` layers, called as
            ``model(input_ids, attention_mask=...)``.
        block_size: query rows per block (exact) / positions per block (causal Performer).
        vig: also collect the counts of Vig et al. (2020) above ``vig_threshold``.
    """

    def __init__(
        self, model: nn.Module, block_size: int = 256, vig: bool = True, vig_threshold: float = 0.1
    ) -> None:
        self.model = model
        modules = attention_modules(model)
        heads = {m.num_heads for m in modules}
        causal = {m.causal for m in modules}
        if len(heads) != 1 or len(causal) != 1:
            raise ValueError(
                f"all attention layers must share num_heads and causal, got {heads} and {causal}"
            )
        self.kinds = [m.config.kind for m in modules]
        self.accumulator = SimilarityAccumulator(
            len(modules), heads.pop(), causal.pop(), block_size, vig, vig_threshold
        )

    @property
    def totals(self) -> SimilarityTotals:
        return self.accumulator.totals

    def add(self, tokens: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """tokens: (B, L) ids; attention_mask: (B, L) bool. One forward pass, all layers."""
        self.accumulator.add_batch(tokens, attention_mask)
        seen: set[int] = set()
        was_training = self.model.training
        self.model.eval()
        try:
            with layer_inputs(self.model, self._on_layer(seen)) as modules:
                run_model(self.model, tokens, attention_mask)
        finally:
            self.model.train(was_training)
        if len(seen) != len(modules):
            raise RuntimeError(f"only {len(seen)} of {len(modules)} attention modules ran")

    def _on_layer(self, seen: set[int]):
        accumulator = self.accumulator

        def on_layer(layer, module, x, mask, rotary):
            seen.add(layer)
            kind = module.config.kind
            if kind in PERFORMER_KINDS:
                q_features, k_features = module.performer_features(x, mask, rotary)
                accumulator.add_features(layer, q_features, k_features)
            elif kind == "exact":
                blocks = module.attention_weight_rows(x, mask, rotary, accumulator.block_size)
                for start, rows in blocks:
                    accumulator.add_attention_rows(layer, start, rows)
            else:
                accumulator.add_attention(layer, module.attention_weights(x, mask, rotary))

        return on_layer
