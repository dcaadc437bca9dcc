"""The protein language model: embeddings, pre-LayerNorm blocks, tied LM head.

The attention of every block is a :class:`protperf.attention.MultiHeadAttention` whose kind
(exact softmax, FAVOR+ softmax, generalized ReLU, identity) comes from
``ModelConfig.attention``; all kinds have the same parameters, so weights move between them.
The knobs of imported architectures (post-LN blocks, embedding LayerNorm, LM-head transform,
token dropout, token-type vector; see :class:`ModelConfig`) add modules only when set.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from protperf.attention import MultiHeadAttention
from protperf.attention.layer import LayerCache
from protperf.data.alphabet import ALPHABET
from protperf.model.chunked import add_positionwise_, chunks_apply, positionwise
from protperf.model.config import ModelConfig
from protperf.model.lm_head import LMHeadTransform, token_dropout
from protperf.model.rotary import RotaryEmbedding


class FeedForward(nn.Module):
    """GELU MLP: (B, L, D) -> (B, L, D)."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc_in = nn.Linear(dim, hidden)
        self.fc_out = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc_out(F.gelu(self.fc_in(x))))


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: x + attn(LN(x)), then x + ffn(LN(x)); or post-LayerNorm
    (``model.norm_placement=post``, BERT): LN(x + attn(x)), then LN(x + ffn(x))."""

    def __init__(self, config: ModelConfig, causal: bool) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.attn = MultiHeadAttention(
            config.dim, config.num_heads, config.attention, causal=causal, dropout=config.dropout
        )
        self.ffn_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.ffn = FeedForward(config.dim, config.ffn_dim, config.dropout)
        self.post_norm = config.norm_placement == "post"

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        rotary: RotaryEmbedding | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        chunked = chunks_apply(self)  # inference: position-wise parts a chunk of L at a time
        width = self.ffn.fc_in.out_features
        if self.post_norm:
            x = self.attn_norm(x + self.attn(x, attention_mask=attention_mask, rotary=rotary,
                                             segment_ids=segment_ids))
            if chunked:
                return positionwise(lambda part: self.ffn_norm(part + self.ffn(part)), x, width)
            return self.ffn_norm(x + self.ffn(x))
        x = x + self.attn(self.attn_norm(x), attention_mask=attention_mask, rotary=rotary,
                          segment_ids=segment_ids)
        if chunked:
            return add_positionwise_(x, lambda part: self.ffn(self.ffn_norm(part)), width)
        return x + self.ffn(self.ffn_norm(x))

    def step(self, x: torch.Tensor, cache: LayerCache, rotary=None) -> torch.Tensor:
        """``forward`` of the newest token x (B, 1, D) of a causal block, against the
        attention's decoding cache (``MultiHeadAttention.new_cache``) -> (B, 1, D)."""
        if self.post_norm:
            x = self.attn_norm(x + self.attn.step(x, cache, rotary))
            return self.ffn_norm(x + self.ffn(x))
        x = x + self.attn.step(self.attn_norm(x), cache, rotary)
        return x + self.ffn(self.ffn_norm(x))


class ProteinLanguageModel(nn.Module):
    """Transformer / Performer language model over the protein alphabet.

    Args:
        config: the architecture (``model.*``).
        causal: unidirectional (``task=clm``) if True, bidirectional (``task=mlm``) otherwise.
    """

    def __init__(self, config: ModelConfig, causal: bool) -> None:
        super().__init__()
        config.validate()
        self.config, self.causal = config, causal
        self.token_embedding = nn.Embedding(config.vocab_size, config.dim)
        self.position_embedding = (
            nn.Embedding(config.max_position, config.dim) if config.position == "learned" else None
        )
        self.rotary = (
            RotaryEmbedding(config.dim // config.num_heads) if config.position == "rotary" else None
        )
        self.token_type = (
            nn.Parameter(torch.zeros(config.dim)) if config.token_type_vector else None
        )
        self.embedding_norm = (
            nn.LayerNorm(config.dim, eps=config.layer_norm_eps) if config.embedding_norm
            else nn.Identity()
        )
        self.mask_id = ALPHABET.mask_id
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, causal) for _ in range(config.num_layers))
        self.final_norm = (
            nn.LayerNorm(config.dim, eps=config.layer_norm_eps) if config.final_norm
            else nn.Identity()
        )
        self.lm_transform = (
            LMHeadTransform(config.dim, config.layer_norm_eps) if config.lm_head_transform
            else nn.Identity()
        )
        self.lm_head = nn.Linear(config.dim, config.vocab_size)
        self.apply(self._init_weights)
        if config.tie_embeddings:
            self.lm_head.weight = self.token_embedding.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def embed(
        self, input_ids: torch.Tensor, start: int = 0, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Token (+ learned position) embeddings of ids (B, T) at positions start..start+T-1.

        With the imported-architecture knobs: token dropout (needs ``attention_mask`` (B, T)
        bool to count real tokens; None: all real), + the token-type vector, LayerNorm.
        Returns (B, T, D), the input of the first block (dropout applied in training)."""
        end = start + input_ids.shape[1]
        if self.position_embedding is not None and end > self.config.max_position:
            raise ValueError(
                f"input length {end} is longer than the learned positional table "
                f"(model.max_position={self.config.max_position})"
            )
        x = self.token_embedding(input_ids)
        if self.config.token_dropout:
            x = token_dropout(x, input_ids, self.mask_id, attention_mask)
        if self.token_type is not None:
            x = x + self.token_type
        if self.position_embedding is not None:
            x = x + self.position_embedding(torch.arange(start, end, device=input_ids.device))
        return self.embedding_dropout(self.embedding_norm(x))

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids: (B, L) int64; attention_mask: (B, L) bool (True at real tokens);
        segment_ids: (B, L) int or None, attention stays within a segment (one protein of a
        packed window, e.g. ``protperf.data.batching.segment_ids_from_bos``).

        Returns the final-LayerNorm hidden states (B, L, D)."""
        x = self.embed(input_ids, attention_mask=attention_mask)
        for block in self.blocks:
            x = block(x, attention_mask=attention_mask, rotary=self.rotary,
                      segment_ids=segment_ids)
        return self.final_norm(x)

    def representations(
        self,
        input_ids: torch.Tensor,
        layers: list[int],
        attention_mask: torch.Tensor | None = None,
    ) -> dict[int, torch.Tensor]:
        """Hidden states (B, L, D) of the chosen layers, keyed by layer index in 0..N.

        Layer 0 is the embedding output, layer i the output of block i, and the last layer N
        comes after the final LayerNorm (as ESM's ``repr_layers``); negative indices count
        from the end (-1 = N). input_ids: (B, L); attention_mask: (B, L) bool.
        """
        num = len(self.blocks)
        wanted = {self.layer_index(layer) for layer in layers}
        out: dict[int, torch.Tensor] = {}
        x = self.embed(input_ids, attention_mask=attention_mask)
        if 0 in wanted:
            out[0] = x if num else self.final_norm(x)
        for index, block in enumerate(self.blocks, start=1):
            if index > max(wanted):
                break
            x = block(x, attention_mask=attention_mask, rotary=self.rotary)
            if index in wanted:
                out[index] = self.final_norm(x) if index == num else x
        return out

    def layer_index(self, layer: int) -> int:
        """Layer ``layer`` (negative: from the end, -1 = N) as an index in 0..N."""
        num = len(self.blocks)
        index = layer + num + 1 if layer < 0 else layer
        if not 0 <= index <= num:
            raise ValueError(f"layer {layer} is out of range for a {num}-layer model (0..{num})")
        return index

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids: (B, L) int64; attention_mask: (B, L) bool; segment_ids: (B, L) or None
        -> logits (B, L, vocab_size)."""
        return self.logits(self.hidden_states(input_ids, attention_mask, segment_ids))

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head (transform, if any, then the vocabulary projection): (B, L, D) ->
        (B, L, vocab_size); a chunk of positions at a time in inference (``model.chunked``)."""
        if chunks_apply(self):
            width = max(self.config.dim, self.config.vocab_size)
            return positionwise(lambda part: self.lm_head(self.lm_transform(part)), hidden,
                                width)
        return self.lm_head(self.lm_transform(hidden))

    def new_caches(self, batch: int, capacity: int) -> list[LayerCache]:
        """Empty decoding caches of every block for ``batch`` sequences of up to ``capacity``
        tokens (recurrent FAVOR+ states, exact KV caches; None for identity attention)."""
        if not self.causal:
            raise ValueError("incremental decoding needs a causal (task.objective=clm) model")
        weight = self.token_embedding.weight
        return [block.attn.new_cache(batch, capacity, weight.dtype, weight.device)
                for block in self.blocks]

    def step(
        self, token_ids: torch.Tensor, caches: list[LayerCache], position: int
    ) -> torch.Tensor:
        """token_ids: (B,) at ``position`` -> next-token logits (B, vocab_size), updating the
        caches (``new_caches``). Equals ``forward`` of the whole prefix at its last position,
        up to rounding, in O(1) per token for Performers (a KV cache for exact attention)."""
        x = self.embed(token_ids[:, None], start=position)
        rotary = None if self.rotary is None else partial(self.rotary, start=position)
        for block, cache in zip(self.blocks, caches, strict=True):
            x = block.step(x, cache, rotary)
        return self.logits(self.final_norm(x))[:, 0]

    def attention_modules(self) -> Iterator[MultiHeadAttention]:
        """The multi-head attention module of every block, first to last."""
        for block in self.blocks:
            yield block.attn

    @torch.no_grad()
    def redraw_features(self) -> None:
        """Draw new random features in every attention module (no-op for exact attention)."""
        for attn in self.attention_modules():
            attn.redraw_features()
