"""Source tensor names -> protperf's :class:`ProteinLanguageModel` state dict.

ESM-2 (fair-esm and HF) and BERT share one shape: token embeddings, blocks of q/k/v/out
projections with biases, two LayerNorms and a GELU MLP, and an LM head with a dense + GELU +
LayerNorm transform. A :class:`Layout` spells where each piece lives in a source's state
dict; :func:`build_state_dict` takes them (shapes checked against the config), maps the
vocabulary rows by symbol and, for rotary models, reorders query/key rows from the
rotate-half convention into protperf's consecutive pairs
(:func:`protperf.model.rotary.pairs_from_halves`), which leaves every attention score equal.
"""

from __future__ import annotations

import re

import torch

from protperf.checkpoint.layouts import Layout, projection_name, reorder_heads
from protperf.errors import PretrainedSourceError
from protperf.model.config import ModelConfig
from protperf.model.rotary import pairs_from_halves
from protperf.pretrained.source import SourceTensors
from protperf.pretrained.vocab import VocabularyMap

ROTARY_BASE = 10000.0


def is_tied(tensors: SourceTensors, layout: Layout) -> bool:
    """Whether the LM-head weight is the token embedding (absent, or equal to it)."""
    if not tensors.has(layout.head_weight):
        return True
    head, embed = tensors.state[layout.head_weight], tensors.state[layout.embed]
    if head.shape == embed.shape and torch.equal(head, embed):
        tensors.mark_used(layout.head_weight)
        return True
    return False


def check_layer_count(tensors: SourceTensors, layout: Layout, num_layers: int,
                      layers_key: str) -> None:
    """Refuse weights of blocks beyond ``num_layers`` (the config's ``layers_key``): they
    would be dropped without a word, truncating the model; names the first such tensor."""
    pattern = re.compile(re.escape(layout.layer).replace(re.escape("{i}"), r"(\d+)"))
    beyond = sorted((int(found[1]), name) for name in tensors.state
                    if (found := pattern.match(name)) and int(found[1]) >= num_layers)
    if beyond:
        held = beyond[-1][0] + 1
        raise PretrainedSourceError(
            f"{tensors.source}: tensor {beyond[0][1]!r} is not used: {layers_key}={num_layers}, "
            f"weights for {held} layers (the config describes fewer blocks than the weights "
            "hold; fix the config)")


def build_state_dict(
    tensors: SourceTensors, layout: Layout, config: ModelConfig, vocab: VocabularyMap,
    source_vocab_size: int, layers_key: str = "num_hidden_layers",
) -> dict[str, torch.Tensor]:
    """protperf's state dict (names of ``ProteinLanguageModel``) from the source tensors;
    ``layers_key``: the source config's number of blocks, named when weights of more blocks
    are present (:func:`check_layer_count`)."""
    check_layer_count(tensors, layout, config.num_layers, layers_key)
    d, f, heads = config.dim, config.ffn_dim, config.num_heads
    state: dict[str, torch.Tensor] = {}

    def module(target: str, name: str, out: int, inp: int | None = None) -> None:
        state[f"{target}.weight"] = tensors.take(f"{name}.weight", (out,) if inp is None
                                                 else (out, inp))
        state[f"{target}.bias"] = tensors.take(f"{name}.bias", (out,))

    embed = tensors.take(layout.embed, (source_vocab_size, d))
    state["token_embedding.weight"] = vocab.embedding(embed)
    if layout.position is not None:
        state["position_embedding.weight"] = tensors.take(layout.position,
                                                          (config.max_position, d))
    if layout.token_type is not None:
        state["token_type"] = tensors.take(layout.token_type, (None, d))[0]
    if layout.embedding_norm is not None:
        module("embedding_norm", layout.embedding_norm, d)
    order = pairs_from_halves(d // heads) if layout.rotate_half else None
    for i in range(config.num_layers):
        src, dst = layout.layer.format(i=i), f"blocks.{i}."
        module(dst + "attn.q_proj", src + layout.query, d, d)
        module(dst + "attn.k_proj", src + layout.key, d, d)
        module(dst + "attn.v_proj", src + layout.value, d, d)
        module(dst + "attn.out_proj", src + layout.attn_out, d, d)
        module(dst + "attn_norm", src + layout.attn_norm, d)
        module(dst + "ffn_norm", src + layout.ffn_norm, d)
        module(dst + "ffn.fc_in", src + layout.ffn_in, f, d)
        module(dst + "ffn.fc_out", src + layout.ffn_out, d, f)
        if config.attention.is_performer and not config.attention.no_projection:
            # a Performer written by protperf-export: its feature projection, columns back in
            # protperf's rotary pairs (as the query/key rows below)
            projection = tensors.take(projection_name(layout, i),
                                      (config.attention.num_features, d // heads))
            state[dst + "attn.feature_projection"] = (
                projection if order is None else projection[:, order])
        if order is not None:
            for proj in ("q_proj", "k_proj"):
                for part in ("weight", "bias"):
                    name = f"{dst}attn.{proj}.{part}"
                    state[name] = reorder_heads(state[name], heads, order)
    if layout.rotate_half:
        for name in list(tensors.state):
            if name.endswith("inv_freq"):
                check_rotary_base(tensors, name, d // heads)
    if layout.final_norm is not None:
        module("final_norm", layout.final_norm, d)
    module("lm_transform.dense", layout.head_dense, d, d)
    module("lm_transform.norm", layout.head_norm, d)
    bias = tensors.take(layout.head_bias, (source_vocab_size,))
    if layout.head_bias_copy is not None and tensors.has(layout.head_bias_copy):
        tensors.take(layout.head_bias_copy, (source_vocab_size,))
    state["lm_head.bias"] = vocab.output_bias(bias)
    if config.tie_embeddings:
        state["lm_head.weight"] = state["token_embedding.weight"]
    else:
        head = tensors.take(layout.head_weight, (source_vocab_size, d))
        state["lm_head.weight"] = vocab.output_weight(head)
    return state


def check_rotary_base(tensors: SourceTensors, name: str, head_dim: int) -> None:
    """A stored rotary inverse-frequency buffer must be protperf's (base 10000)."""
    stored = tensors.take(name, (head_dim // 2,))
    expected = ROTARY_BASE ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    if not torch.allclose(stored, expected, rtol=1e-5, atol=0):
        raise PretrainedSourceError(
            f"tensor {name!r} of {tensors.source} holds rotary frequencies of another base "
            f"than {ROTARY_BASE:g}, which protperf's rotary embedding uses"
        )
