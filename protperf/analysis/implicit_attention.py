"""The attention an attention layer applies, read from the layer: for plots and analysis.

``feature_maps`` gives a Performer layer's features q', k' (linear in L); ``attention_matrix``
the row-normalized (B, H, L, L) attention of any kind (O(L^2): single proteins, plots). Both
see exactly what the layer computes (same scaling, rotary, masks, random features).
"""

from __future__ import annotations

import torch

from protperf.attention import MultiHeadAttention
from protperf.attention.layer import Rotary
from protperf.attention.ops.feature_maps import performer_feature_maps
from protperf.attention.reference import softmax_attention_matrix


def feature_maps(
    layer: MultiHeadAttention,
    x: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    rotary: Rotary | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Performer features (q', k') of the layer's input x (B, L, D), each (B, H, L, m),
    float32 (float64 for float64 input).

    The layer's implicit attention is exactly A_ij = q'_i.k'_j / sum_{allowed j} q'_i.k'_j
    (allowed: j <= i when causal, real keys): keys share one stabilizer per (batch, head)
    and padding keys are zero. Linear in L.
    """
    cfg = layer.config
    if not cfg.is_performer:
        raise ValueError(
            "feature_maps needs a Performer attention (attention.kind='favor_softmax' or "
            f"'favor_relu'), got attention.kind={cfg.kind!r}"
        )
    q, k, _ = layer.project(x, rotary)
    q_prime, k_prime, _ = performer_feature_maps(
        q, k, layer.random_projection, cfg.feature_kernel, attention_mask, causal_keys=False,
        relu_eps=cfg.relu_eps, favorpp=cfg.feature_type == "favorpp",
    )
    return q_prime, k_prime


def attention_matrix(
    layer: MultiHeadAttention,
    x: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    rotary: Rotary | None = None,
) -> torch.Tensor:
    """The row-normalized (B, H, L, L) attention the layer applies to x (B, L, D).

    Exact: the softmax; Performer: q'_i.k'_j / D_i (causal-masked when causal);
    identity: the identity matrix. Rows of padding queries are zero.
    """
    b, length, _ = x.shape
    kind = layer.config.kind
    if kind == "identity":
        eye = torch.eye(length, device=x.device, dtype=x.dtype)
        attn = eye.expand(b, layer.num_heads, length, length).clone()
    elif kind == "exact":
        q, k, _ = layer.project(x, rotary)
        attn = softmax_attention_matrix(q, k, layer.causal, attention_mask)
    else:
        q_prime, k_prime = feature_maps(layer, x, attention_mask, rotary)
        weights = q_prime @ k_prime.transpose(-2, -1)
        if layer.causal:
            weights = weights.tril()
        attn = weights / weights.sum(-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
    if attention_mask is not None:
        attn = attn * attention_mask[:, None, :, None].to(attn.dtype)
    return attn
