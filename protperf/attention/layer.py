"""Multi-head attention whose parameters are the same for every attention kind.

The q/k/v/out projections are the only parameters, so one checkpoint loads into exact,
FAVOR+ softmax, FAVOR+ ReLU or identity attention. Performer kinds keep their random
projection in the buffer ``feature_projection`` (saved in checkpoints; a checkpoint without
it keeps the fresh draw, and a model without it ignores it).

``forward`` runs a whole sequence, ``step`` one new token of a causal layer against the
layer's cache (``new_cache``: the recurrent FAVOR+ state or the exact KV cache);
``attention_weights`` gives the L x L map it applies (exact, or the Performer's implicit one)
for analysis. Without autograd and in eval mode, ``forward`` makes the q/k/v and output
projections a chunk of positions at a time (no whole-sequence temporaries besides the heads).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import torch
from torch import nn

from protperf.attention.backends import attention_mode, check_backend
from protperf.attention.config import AttentionConfig
from protperf.attention.ops.feature_maps import draw_projection, performer_feature_maps
from protperf.attention.ops.recurrent import (
    KVCache,
    RecurrentState,
    empty_kv_cache,
    empty_recurrent_state,
    kv_cache_step,
)
from protperf.attention.performer import performer_step
from protperf.attention.weights import (
    exact_weight_rows,
    identity_weight_rows,
    implicit_weight_rows,
    rows_to_matrix,
)

#: rotary position embedding: (q, k) -> (q, k) at positions 0..L-1, or start..start+L-1
#: with the keyword ``start`` (inference takes the sequence a chunk of positions at a time)
Rotary = Callable[..., tuple[torch.Tensor, torch.Tensor]]
#: inference (no autograd, eval mode): bytes of one chunk's (B, n, D) q/k/v projection
CHUNK_BYTES = 4 * 2**20
#: fewest positions per inference chunk
MIN_CHUNK = 64
LayerCache = RecurrentState | KVCache | None
FEATURE_BUFFER = "feature_projection"


class MultiHeadAttention(nn.Module):
    """q/k/v/out projections + one attention kind.

    Args:
        dim: model width D.
        num_heads: H; must divide D.
        config: which attention to compute.
        causal: unidirectional (each position sees itself and the past) if True.
        dropout: dropout on the output projection.

    Outputs at padding positions (``attention_mask`` False) are zero before the output
    projection, for every kind.
    """

    def __init__(
        self, dim: int, num_heads: int, config: AttentionConfig, causal: bool, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if num_heads <= 0 or dim % num_heads:
            raise ValueError(f"num_heads={num_heads} does not divide dim={dim}")
        if config.feature_type == "favorpp" and config.kind == "favor_softmax" and causal:
            raise ValueError(
                "attention.feature_type='favorpp' is bidirectional only: its optimal parameter "
                "is a statistic of all queries and keys, which would leak future tokens in "
                "causal attention"
            )
        check_backend(config, causal)
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.config, self.causal = config, causal
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.uses_projection = config.is_performer and not config.no_projection
        if self.uses_projection:
            self.register_buffer(FEATURE_BUFFER, self._draw_projection())

    # ----------------------------------------------------------------- random features
    def _draw_projection(self) -> torch.Tensor:
        """A fresh (m, head_dim) projection drawn from torch's global RNG (on CPU)."""
        cfg = self.config
        return draw_projection(cfg.feature_type, cfg.num_features, self.head_dim, cfg.norm_scaling)

    @property
    def random_projection(self) -> torch.Tensor | None:
        """The (m, head_dim) random projection of the Performer features, or None (exact,
        identity, ReLU without projection)."""
        return getattr(self, FEATURE_BUFFER) if self.uses_projection else None

    @torch.no_grad()
    def redraw_features(self) -> bool:
        """Draw new random features in training mode; returns whether anything was redrawn.

        A no-op in eval mode and for exact/identity/no-projection attention. The training
        loop calls it every ``config.redraw_interval`` steps.
        """
        if not (self.training and self.uses_projection):
            return False
        buffer = getattr(self, FEATURE_BUFFER)
        buffer.copy_(self._draw_projection().to(buffer))
        return True

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        key = prefix + FEATURE_BUFFER
        if key in missing_keys:  # checkpoint of an exact model: keep the fresh draw
            missing_keys.remove(key)
        if key in unexpected_keys:  # Performer checkpoint into exact attention: ignore it
            unexpected_keys.remove(key)

    # ----------------------------------------------------------------------- forward
    def project(
        self, x: torch.Tensor, rotary: Rotary | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (B, L, D) -> q, k, v each (B, H, L, Dh), rotary applied to q and k."""
        b, length, _ = x.shape
        q, k, v = (
            proj(x).view(b, length, self.num_heads, self.head_dim).transpose(1, 2)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        if rotary is not None:
            q, k = rotary(q, k)
        return q, k, v

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        grads_in_place: bool = False,
    ) -> torch.Tensor:
        """Attention of projected heads: q, k, v (B, H, L, Dh) -> (B, H, L, Dh).

        segment_ids: (B, L) int, non-decreasing per row, or None: positions attend only
        within their segment (no attention across packed proteins). grads_in_place: nothing
        reads q, k, v after the backward (``forward``'s own projections), so a Performer
        kernel may write their gradients over them (one set of heads in memory, not two).
        """
        kernel = attention_mode(self.config, self.causal, q, segment_ids, grads_in_place)
        out = kernel(q, k, v, self.random_projection, self.config, attention_mask, segment_ids)
        if attention_mask is not None:
            out = out * attention_mask[:, None, :, None].to(out.dtype)
        return out

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        rotary: Rotary | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: (B, L, D); attention_mask: (B, L) bool, True at real tokens; -> (B, L, D).

        segment_ids: (B, L) or None; see ``attend``.
        """
        if not torch.is_grad_enabled() and not self.training:  # inference: chunks of L
            q, k, v = self._project_in_chunks(x, rotary)
            heads = self.attend(q, k, v, attention_mask, segment_ids)
            del q, k, v  # only the heads are needed by the output projection
            return self._output_in_chunks(heads)
        q, k, v = self.project(x, rotary)  # heads of this call alone
        return self._output(self.attend(q, k, v, attention_mask, segment_ids,
                                        grads_in_place=True))

    def _output(self, heads: torch.Tensor) -> torch.Tensor:
        """(B, H, L, Dh) -> the output projection (B, L, D), with dropout."""
        b, _, length, _ = heads.shape
        out = heads.transpose(1, 2).reshape(b, length, self.dim)
        return self.dropout(self.out_proj(out))

    def _chunks(self, x: torch.Tensor) -> list[slice]:
        b, length = x.shape[0], x.shape[-2]
        size = max(MIN_CHUNK, CHUNK_BYTES // max(1, b * self.dim * x.element_size()))
        return [slice(start, min(start + size, length)) for start in range(0, length, size)]

    def _project_in_chunks(
        self, x: torch.Tensor, rotary: Rotary | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``project`` a chunk of positions at a time into contiguous (B, H, L, Dh) heads
        (no autograd): no whole-sequence projection or rotary temporaries."""
        chunks = self._chunks(x)
        if len(chunks) == 1:
            return self.project(x, rotary)
        heads = None
        for sl in chunks:
            turn = None if rotary is None else partial(rotary, start=sl.start)
            parts = self.project(x[:, sl], turn)
            if heads is None:
                shape = (x.shape[0], self.num_heads, x.shape[1], self.head_dim)
                heads = tuple(part.new_empty(shape) for part in parts)
            for whole, part in zip(heads, parts, strict=True):
                whole[:, :, sl] = part
        return heads

    def _output_in_chunks(self, heads: torch.Tensor) -> torch.Tensor:
        """``_output`` a chunk of positions at a time (no autograd, eval mode)."""
        chunks = self._chunks(heads)
        if len(chunks) == 1:
            return self._output(heads)
        out = None
        for sl in chunks:
            part = self._output(heads[:, :, sl])
            if out is None:
                out = part.new_empty(heads.shape[0], heads.shape[2], self.dim)
            out[:, sl] = part
        return out

    # ---------------------------------------------------------------------- decoding
    def new_cache(
        self, batch: int, capacity: int, dtype: torch.dtype = torch.float32, device=None
    ) -> LayerCache:
        """An empty decoding cache for ``batch`` sequences of up to ``capacity`` tokens.

        Exact: a (B, H, capacity, Dh) KV cache in ``dtype``; Performer: the recurrent state
        (B, H, m, Dh + 1) in float32 (float64 for float64); identity: None.
        """
        if not self.causal:
            raise ValueError("incremental decoding needs a causal (task.objective=clm) model")
        cfg = self.config
        if cfg.kind == "exact":
            return empty_kv_cache(batch, self.num_heads, capacity, self.head_dim, dtype, device)
        if cfg.is_performer:
            projection = self.random_projection
            m = self.head_dim if projection is None else projection.shape[0]
            work = torch.float64 if dtype == torch.float64 else torch.float32
            return empty_recurrent_state(batch, self.num_heads, m, self.head_dim, work, device)
        return None

    def step(
        self, x: torch.Tensor, cache: LayerCache, rotary: Rotary | None = None
    ) -> torch.Tensor:
        """The newest token: x (B, 1, D) -> (B, 1, D), updating ``cache`` (``new_cache``).

        Equals the last position of ``forward`` over the whole prefix (causal), up to
        rounding; ``rotary`` must rotate by the token's position.
        """
        q, k, v = self.project(x, rotary)  # (B, H, 1, Dh)
        cfg = self.config
        if cfg.kind == "exact":
            out = kv_cache_step(q, k, v, cache)
        elif cfg.kind == "identity":
            out = v
        else:
            out = performer_step(q, k, v, cache, self.random_projection, cfg)
        return self._output(out)

    # ---------------------------------------------------------------------- analysis
    def performer_features(
        self, x: torch.Tensor, attention_mask: torch.Tensor | None = None,
        rotary: Rotary | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A Performer's features (q', k'), each (B, H, L, m), of x (B, L, D); float32
        (float64 for float64 input). Its implicit attention is exactly A_ij = q'_i.k'_j /
        sum_{allowed j} q'_i.k'_j: keys share one stabilizer per (batch, head) and padding
        keys are zero. Linear in L."""
        cfg = self.config
        if not cfg.is_performer:
            raise ValueError(
                "performer_features needs a Performer attention (attention.kind="
                f"'favor_softmax' or 'favor_relu'), got attention.kind={cfg.kind!r}")
        q, k, _ = self.project(x, rotary)
        q_prime, k_prime, _ = performer_feature_maps(
            q, k, self.random_projection, cfg.feature_kernel, attention_mask, causal_keys=False,
            relu_eps=cfg.relu_eps, favorpp=cfg.feature_type == "favorpp")
        return q_prime, k_prime

    @torch.no_grad()
    def attention_weight_rows(
        self, x: torch.Tensor, attention_mask: torch.Tensor | None = None,
        rotary: Rotary | None = None, block_size: int = 256,
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """The map of ``attention_weights``, ``block_size`` query rows at a time: yields
        (start, rows (B, H, C, L)); rows of padding queries are not zeroed. Memory O(B H C L)."""
        if self.config.kind == "identity":
            b, length, _ = x.shape
            return identity_weight_rows(b, self.num_heads, length, block_size, x.dtype, x.device)
        if self.config.kind == "exact":
            q, k, _ = self.project(x, rotary)
            return exact_weight_rows(q, k, attention_mask, self.causal, block_size)
        q_prime, k_prime = self.performer_features(x, attention_mask, rotary)
        return implicit_weight_rows(q_prime, k_prime, attention_mask, self.causal, block_size)

    def attention_weights(
        self, x: torch.Tensor, attention_mask: torch.Tensor | None = None,
        rotary: Rotary | None = None,
    ) -> torch.Tensor:
        """The row-normalized (B, H, L, L) attention this layer applies to x (B, L, D): exact
        softmax, a Performer's implicit q'_i.k'_j / D_i (causal-masked when causal), or the
        identity. Rows of padding queries are zero. O(L^2): single proteins, plots."""
        rows = self.attention_weight_rows(x, attention_mask, rotary, block_size=x.shape[1])
        return rows_to_matrix(rows, attention_mask)
