"""Where ESM-2 (fair-esm, transformers) and BERT-family masked LMs keep the tensors of
protperf's :class:`~protperf.model.transformer.ProteinLanguageModel`: the name tables that
import (:mod:`protperf.pretrained`) reads by and export (:mod:`.hf_export`) writes by."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Layout:
    """Names in a source state dict. ``layer`` is a prefix with ``{i}`` for the block index;
    the per-block names and norms are modules (``.weight`` / ``.bias`` are appended)."""

    embed: str
    layer: str
    query: str
    key: str
    value: str
    attn_out: str
    attn_norm: str
    ffn_norm: str
    ffn_in: str
    ffn_out: str
    head_dense: str
    head_norm: str
    head_weight: str
    head_bias: str
    final_norm: str | None = None
    embedding_norm: str | None = None
    position: str | None = None
    token_type: str | None = None
    head_bias_copy: str | None = None  # a second name of the same bias (BERT's decoder.bias)
    rotate_half: bool = False  # rotary: dims i and i + Dh/2 rotate together


FAIR_ESM_LAYOUT = Layout(
    embed="embed_tokens.weight",
    layer="layers.{i}.",
    query="self_attn.q_proj",
    key="self_attn.k_proj",
    value="self_attn.v_proj",
    attn_out="self_attn.out_proj",
    attn_norm="self_attn_layer_norm",
    ffn_norm="final_layer_norm",
    ffn_in="fc1",
    ffn_out="fc2",
    final_norm="emb_layer_norm_after",
    head_dense="lm_head.dense",
    head_norm="lm_head.layer_norm",
    head_weight="lm_head.weight",
    head_bias="lm_head.bias",
    rotate_half=True,
)
HF_ESM_LAYOUT = Layout(
    embed="esm.embeddings.word_embeddings.weight",
    layer="esm.encoder.layer.{i}.",
    query="attention.self.query",
    key="attention.self.key",
    value="attention.self.value",
    attn_out="attention.output.dense",
    attn_norm="attention.LayerNorm",
    ffn_norm="LayerNorm",
    ffn_in="intermediate.dense",
    ffn_out="output.dense",
    final_norm="esm.encoder.emb_layer_norm_after",
    head_dense="lm_head.dense",
    head_norm="lm_head.layer_norm",
    head_weight="lm_head.decoder.weight",
    head_bias="lm_head.bias",
    rotate_half=True,
)
BERT_LAYOUT = Layout(
    embed="bert.embeddings.word_embeddings.weight",
    position="bert.embeddings.position_embeddings.weight",
    token_type="bert.embeddings.token_type_embeddings.weight",
    embedding_norm="bert.embeddings.LayerNorm",
    layer="bert.encoder.layer.{i}.",
    query="attention.self.query",
    key="attention.self.key",
    value="attention.self.value",
    attn_out="attention.output.dense",
    attn_norm="attention.output.LayerNorm",
    ffn_norm="output.LayerNorm",
    ffn_in="intermediate.dense",
    ffn_out="output.dense",
    head_dense="cls.predictions.transform.dense",
    head_norm="cls.predictions.transform.LayerNorm",
    head_weight="cls.predictions.decoder.weight",
    head_bias="cls.predictions.bias",
    head_bias_copy="cls.predictions.decoder.bias",
)


#: The ``attn_implementation`` of a Performer exported to transformers (:mod:`protperf.hf`
#: registers it). transformers quotes an implementation it does not know, so the name carries
#: what to do.
ATTN_IMPLEMENTATION = "protperf_favor (pip install protperf, then import protperf.hf)"
#: config.json key holding such a Performer's AttentionConfig (kind, num_features, ...).
PERFORMER_SETTINGS_KEY = "protperf_attention"
#: Tensor name (beside the layer's query) of a layer's (m, head_dim) feature projection.
FEATURE_PROJECTION = "feature_projection"


def projection_name(layout: Layout, layer: int) -> str:
    """Where a layer's feature projection lives in a transformers state dict: beside its
    query (``...attention.self.feature_projection``)."""
    return layout.layer.format(i=layer) + layout.query.rsplit(".", 1)[0] + "." + FEATURE_PROJECTION


def reorder_heads(tensor: torch.Tensor, heads: int, order: torch.Tensor) -> torch.Tensor:
    """Reorder the output rows of a projection within each head: tensor (H*Dh, ...) or
    (H*Dh,), order (Dh,) -> the same shape."""
    split = tensor.reshape(heads, -1, *tensor.shape[1:])
    return split[:, order].reshape(tensor.shape)
