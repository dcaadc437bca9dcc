"""Token-by-token decoders of a causal :class:`ProteinLanguageModel` with one interface.

``IncrementalDecoder`` keeps the model's per-layer decoding caches (``new_caches``: the
recurrent FAVOR+ state of Performer layers, constant size per token; a KV cache for exact
layers) and calls ``ProteinLanguageModel.step``; ``FullForwardDecoder`` reruns the whole
prefix (a reference). Both give the same next-token logits (tested to rounding).
"""

from __future__ import annotations

import torch

from protperf.model.transformer import ProteinLanguageModel


class IncrementalDecoder:
    """Feeds one token per sequence at a time; ``step`` returns next-token logits.

    Args:
        model: a causal model in eval mode.
        batch_size: B, the number of sequences decoded together.
        capacity: the most tokens that will be fed (sizes the exact KV caches; checked
            against a learned positional table).
    """

    def __init__(self, model: ProteinLanguageModel, batch_size: int, capacity: int) -> None:
        self.model, self.position, self.capacity = model, 0, capacity
        self.caches = model.new_caches(batch_size, capacity)

    @torch.no_grad()
    def step(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token_ids: (B,) int64 at the next position -> logits (B, vocab) for the one after."""
        if self.position >= self.capacity:
            raise ValueError(f"decoder capacity of {self.capacity} tokens exceeded")
        logits = self.model.step(token_ids, self.caches, self.position)
        self.position += 1
        return logits

    def state_bytes(self) -> int:
        """Bytes held by the caches (for benchmarks)."""
        return sum(cache.nbytes() for cache in self.caches if cache is not None)


class FullForwardDecoder:
    """Reference decoder with the same interface: reruns the full causal forward on the whole
    prefix at every step (O(t) per token; for tests and benchmarks)."""

    def __init__(self, model: ProteinLanguageModel, batch_size: int, capacity: int) -> None:
        self.model, self.capacity = model, capacity
        self.tokens = torch.empty(batch_size, 0, dtype=torch.long,
                                  device=model.token_embedding.weight.device)

    @torch.no_grad()
    def step(self, token_ids: torch.Tensor) -> torch.Tensor:
        self.tokens = torch.cat([self.tokens, token_ids[:, None]], dim=1)
        return self.model(self.tokens)[:, -1]
