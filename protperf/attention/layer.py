"""Multi-head attention whose parameters are the same for every attention kind.

The q/k/v/out projections are the only parameters, so one checkpoint loads into exact,
FAVOR+ softmax, FAVOR+ ReLU or identity attention. Performer kinds keep their random
projection in the buffer ``feature_projection`` (saved in checkpoints; a checkpoint without
it keeps the fresh draw, and a model without it ignores it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from protperf.attention.backends import causal_kernel
from protperf.attention.config import AttentionConfig
from protperf.attention.ops.exact import exact_attention
from protperf.attention.ops.feature_maps import performer_feature_maps
from protperf.attention.ops.features import draw_projection
from protperf.attention.performer import PerformerAttention
from protperf.attention.reference import softmax_attention_matrix

Rotary = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
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
        # the attention of the heads, chosen once: exact, identity, or a Performer whose
        # feature map and causal kernel (backend) are fixed here
        self._heads_attention: Callable[..., torch.Tensor] = self._identity
        if config.kind == "exact":
            self._heads_attention = self._exact
        elif config.is_performer:
            self.performer = PerformerAttention(
                kernel=self._kernel(), causal=causal, relu_eps=config.relu_eps,
                favorpp=config.feature_type == "favorpp",
                causal_kernel=causal_kernel(config.backend,
                                            config.causal_chunk_size(self.head_dim))
                if causal else None,
            )
            self._heads_attention = self._performer

    # ----------------------------------------------------------------- random features
    def _draw_projection(self) -> torch.Tensor:
        """A fresh (m, head_dim) projection drawn from torch's global RNG (on CPU)."""
        cfg = self.config
        return draw_projection(cfg.feature_type, cfg.num_features, self.head_dim, cfg.norm_scaling)

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

    # ----------------------------------------------------------------------- pieces
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

    def _projection(self) -> torch.Tensor | None:
        return getattr(self, FEATURE_BUFFER) if self.uses_projection else None

    def _kernel(self) -> str:
        return "softmax" if self.config.kind == "favor_softmax" else "relu"

    def _exact(self, q, k, v, attention_mask, segment_ids):
        return exact_attention(q, k, v, self.causal, attention_mask, segment_ids)

    def _identity(self, q, k, v, attention_mask, segment_ids):
        return v

    def _performer(self, q, k, v, attention_mask, segment_ids):
        return self.performer(q, k, v, self._projection(), attention_mask, segment_ids)

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attention of projected heads: q, k, v (B, H, L, Dh) -> (B, H, L, Dh).

        segment_ids: (B, L) int, non-decreasing per row, or None: positions attend only
        within their segment (no attention across packed proteins).
        """
        out = self._heads_attention(q, k, v, attention_mask, segment_ids)
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
        b, length, _ = x.shape
        q, k, v = self.project(x, rotary)
        out = self.attend(q, k, v, attention_mask, segment_ids)
        out = out.transpose(1, 2).reshape(b, length, self.dim)
        return self.dropout(self.out_proj(out))

    # --------------------------------------------------------------------- analysis
    def feature_maps(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        rotary: Rotary | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Performer features (q', k'), each (B, H, L, m), float32 (float64 for float64 input).

        The layer's implicit attention is exactly A_ij = q'_i.k'_j / sum_{allowed j} q'_i.k'_j
        (allowed: j <= i when causal, real keys): keys share one stabilizer per (batch, head)
        and padding keys are zero. Linear in L.
        """
        if not self.config.is_performer:
            raise ValueError(
                "feature_maps needs a Performer attention (attention.kind='favor_softmax' or "
                f"'favor_relu'), got attention.kind={self.config.kind!r}"
            )
        q, k, _ = self.project(x, rotary)
        cfg = self.config
        q_prime, k_prime, _ = performer_feature_maps(
            q, k, self._projection(), self._kernel(), attention_mask, causal_keys=False,
            relu_eps=cfg.relu_eps, favorpp=cfg.feature_type == "favorpp",
        )
        return q_prime, k_prime

    def attention_matrix(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        rotary: Rotary | None = None,
    ) -> torch.Tensor:
        """The row-normalized (B, H, L, L) attention the layer applies (O(L^2): for plots).

        Exact: the softmax; Performer: q'_i.k'_j / D_i (causal-masked when causal);
        identity: the identity matrix. Rows of padding queries are zero.
        """
        b, length, _ = x.shape
        kind = self.config.kind
        if kind == "identity":
            eye = torch.eye(length, device=x.device, dtype=x.dtype)
            attn = eye.expand(b, self.num_heads, length, length).clone()
        elif kind == "exact":
            q, k, _ = self.project(x, rotary)
            attn = softmax_attention_matrix(q, k, self.causal, attention_mask)
        else:
            q_prime, k_prime = self.feature_maps(x, attention_mask, rotary)
            weights = q_prime @ k_prime.transpose(-2, -1)
            if self.causal:
                weights = weights.tril()
            attn = weights / weights.sum(-1, keepdim=True).clamp_min(
                torch.finfo(weights.dtype).tiny
            )
        if attention_mask is not None:
            attn = attn * attention_mask[:, None, :, None].to(attn.dtype)
        return attn
