"""protperf's Performer attention inside transformers: ``import protperf.hf``.

A Performer exported with ``protperf-export CKPT --format esm`` (or ``--format bert``) is an
ordinary ``EsmForMaskedLM`` / ``BertForMaskedLM`` directory whose ``config.json`` names the
attention implementation :data:`ATTN_IMPLEMENTATION` and holds the FAVOR+ settings under
:data:`SETTINGS_KEY`; the feature projections are tensors of ``model.safetensors``
(``...attention.self.feature_projection``, one (m, head_dim) matrix per layer). Importing this
module registers, with transformers:

- the attention function (``AttentionInterface``): FAVOR+ softmax or ReLU attention computed by
  :func:`protperf.attention.backends.attention_mode`'s kernel, the code protperf itself runs;
- its mask function (``AttentionMaskInterface``): the key-padding mask, which is all linear
  attention needs (no L x L mask is built);
- a module-registration hook that gives each ``EsmSelfAttention`` / ``BertSelfAttention`` of a
  model configured for it the ``feature_projection`` buffer, so that ``from_pretrained`` loads
  the projections like any other weight (and ``save_pretrained`` writes them back).

Without this module, transformers refuses the directory: the implementation's name, which
says ``pip install protperf``, is not one it knows; it never falls back to exact attention.

Math: transformers hands over heads whose product ``scaling * q.k`` is the softmax logit
(ESM scales queries by head_dim^-1/2 before its rotary embedding and passes ``scaling=1``;
BERT passes ``scaling=head_dim^-1/2``), keys unscaled. The query is brought back to protperf's
raw query (``q * scaling * sqrt(head_dim)``), and protperf's feature maps scale both by
head_dim^-1/4 as in training, so the random features see exactly protperf's inputs.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch

from protperf.attention.config import AttentionConfig
from protperf.checkpoint.layouts import ATTN_IMPLEMENTATION, FEATURE_PROJECTION
from protperf.checkpoint.layouts import PERFORMER_SETTINGS_KEY as SETTINGS_KEY
from protperf.errors import require

FEATURE_BUFFER = FEATURE_PROJECTION
#: transformers' self-attention modules whose conventions :func:`favor_attention` handles.
ATTENTION_CLASSES = ("EsmSelfAttention", "BertSelfAttention")


def performer_settings(config: Any) -> AttentionConfig:
    """The checked :class:`AttentionConfig` a transformers config holds under SETTINGS_KEY."""
    settings = getattr(config, SETTINGS_KEY, None)
    known = {f.name for f in fields(AttentionConfig)}
    if not isinstance(settings, dict) or not set(settings) <= known:
        raise ValueError(
            f"attn_implementation={ATTN_IMPLEMENTATION!r} needs config.{SETTINGS_KEY}, a dict "
            f"of protperf AttentionConfig keys ({', '.join(sorted(known))}), got {settings!r}: "
            "write the directory with protperf-export")
    attention = AttentionConfig(**settings)
    attention.validate(f"config.{SETTINGS_KEY}")
    if not attention.is_performer:
        raise ValueError(f"config.{SETTINGS_KEY}.kind={attention.kind!r} is not a Performer "
                         "(favor_softmax or favor_relu)")
    return attention


def uses_projection(attention: AttentionConfig) -> bool:
    return attention.is_performer and not attention.no_projection


def key_padding(attention_mask: torch.Tensor | None, length: int) -> torch.Tensor | None:
    """(B, L) bool, True at real keys, from what transformers passes: None, a (B, L) mask, or a
    (B, 1 or H, Lq, L) bool / additive float mask whose every query row is the same."""
    if attention_mask is None:
        return None
    keep = attention_mask if attention_mask.dtype == torch.bool else (
        attention_mask != 0 if attention_mask.dim() == 2 else attention_mask == 0)
    if keep.dim() == 4:
        if not bool((keep == keep[:, :1, :1, :]).all()):
            raise ValueError("protperf's Performer attention takes key-padding masks only (the "
                             "same keys for every query and head), not a general 4D mask")
        keep = keep[:, 0, 0, :]
    if keep.dim() != 2 or keep.shape[-1] != length:
        raise ValueError(f"attention mask of shape {tuple(attention_mask.shape)} does not "
                         f"match {length} keys")
    return keep


def favor_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                    value: torch.Tensor, attention_mask: torch.Tensor | None,
                    scaling: float | None = None, dropout: float = 0.0, **kwargs: Any):
    """transformers' attention interface: query, key, value (B, H, L, Dh) -> output
    (B, L, H, Dh) and no attention weights. Bidirectional FAVOR+ as protperf computes it;
    padding positions output zeros, as in protperf."""
    from protperf.attention.backends import attention_mode

    attention = performer_settings(module.config)
    if getattr(module, "is_causal", False) or getattr(module.config, "is_decoder", False):
        raise ValueError("protperf's Performer attention in transformers is bidirectional "
                         "(masked language models)")
    head_dim = query.shape[-1]
    scaling = head_dim ** -0.5 if scaling is None else scaling
    query = query * (scaling * head_dim ** 0.5)  # protperf's raw (rotated) query
    projection = getattr(module, FEATURE_BUFFER) if uses_projection(attention) else None
    key_mask = key_padding(attention_mask, key.shape[-2])
    kernel = attention_mode(attention, False, query, None)  # the layer's own branch point
    out = kernel(query, key, value, projection, attention, key_mask, None)
    if key_mask is not None:
        out = out * key_mask[:, None, :, None].to(out.dtype)
    return out.transpose(1, 2).contiguous(), None


def favor_mask(batch_size: int, q_length: int, kv_length: int, q_offset: int = 0,
               kv_offset: int = 0, mask_function: Any = None,
               attention_mask: torch.Tensor | None = None, **kwargs: Any):
    """transformers' mask interface: the (B, 1, 1, L) key-padding mask, or None."""
    if attention_mask is None:
        return None
    return attention_mask.bool()[:, None, None, kv_offset:kv_offset + kv_length]


def add_feature_buffer(parent: torch.nn.Module, name: str, module: torch.nn.Module):
    """Module-registration hook: an ESM / BERT self-attention of a model configured for
    :data:`ATTN_IMPLEMENTATION` gets its (m, head_dim) ``feature_projection`` buffer (NaN
    until the weights are loaded), so ``from_pretrained`` fills it."""
    if type(module).__name__ not in ATTENTION_CLASSES:  # every other module: one name check
        return None
    config = getattr(module, "config", None)
    if (getattr(config, "_attn_implementation", None) != ATTN_IMPLEMENTATION
            or hasattr(module, FEATURE_BUFFER)):
        return None
    attention = performer_settings(config)
    if uses_projection(attention):
        head_dim = config.hidden_size // config.num_attention_heads
        module.register_buffer(FEATURE_BUFFER, torch.full((attention.num_features, head_dim),
                                                          float("nan")))
    return None


def register() -> None:
    """Register the attention and mask functions and the buffer hook (once per process)."""
    global _registered
    if _registered:
        return
    what = "import protperf.hf (Performer attention in transformers)"
    transformers = require("transformers", what)
    masking = require("transformers.masking_utils", what)
    transformers.AttentionInterface.register(ATTN_IMPLEMENTATION, favor_attention)
    masking.AttentionMaskInterface.register(ATTN_IMPLEMENTATION, favor_mask)
    torch.nn.modules.module.register_module_module_registration_hook(add_feature_buffer)
    _registered = True


_registered = False
register()
