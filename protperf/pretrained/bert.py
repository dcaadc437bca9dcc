"""HF BERT-family protein masked LMs (ProtBert, AntiBERTy, ...): ``bert.*`` encoder weights,
the ``cls.predictions.*`` masked-LM head, ``vocab.txt`` and ``config.json``.

BERT is a post-LayerNorm Transformer with learned absolute positions, an embedding LayerNorm,
token-type embeddings (every protein is type 0: a constant vector) and no final LayerNorm.
Other heads (NSP ``cls.seq_relationship``, AntiBERTy's species / chain / graft classifiers,
the pooler) are not part of a masked LM and are left out (listed by the importer).
"""

from __future__ import annotations

from pathlib import Path

from protperf.checkpoint.imported import ImportedModel
from protperf.checkpoint.layouts import BERT_LAYOUT
from protperf.errors import PretrainedSourceError
from protperf.model.config import ModelConfig
from protperf.pretrained.hf import (
    read_config,
    read_vocab,
    require_value,
    saved_attention,
    setting,
)
from protperf.pretrained.layout import build_state_dict, is_tied
from protperf.pretrained.source import SourceTensors
from protperf.pretrained.vocab import map_vocabulary
from protperf.pretrained.weights import read_hf_weights

#: Buffers transformers derives from the config (saved by older versions): not weights.
DERIVED_BUFFERS = ("bert.embeddings.position_ids", "bert.embeddings.token_type_ids")


def import_bert(directory: Path, vocab_file: Path | None = None) -> ImportedModel:
    """Convert an HF BERT masked-LM directory (see the module docstring)."""
    config = read_config(directory)
    for key, allowed, default in (
        ("hidden_act", ("gelu",), "gelu"),
        ("position_embedding_type", ("absolute",), "absolute"),
        ("is_decoder", (False,), False),
    ):
        require_value(config, key, allowed, default, directory)
    vocab_size = setting(config, "vocab_size", directory)
    tokens, vocab_path = read_vocab(directory, vocab_size, vocab_file)
    vocab = map_vocabulary(tokens, str(vocab_path))
    state, weights_name = read_hf_weights(directory)
    tensors = SourceTensors(state, str(directory / weights_name))
    if not any(name.startswith("cls.predictions.") for name in tensors.state):
        raise PretrainedSourceError(
            f"{directory / weights_name} has no masked-LM head (cls.predictions.*): protperf "
            "imports BERT masked language models (BertForMaskedLM and the like)"
        )
    for name in DERIVED_BUFFERS:
        if tensors.has(name):
            tensors.mark_used(name)
    model_config = ModelConfig(
        name=f"bert-{directory.name}",
        dim=setting(config, "hidden_size", directory),
        num_heads=setting(config, "num_attention_heads", directory),
        num_layers=setting(config, "num_hidden_layers", directory),
        ffn_dim=setting(config, "intermediate_size", directory),
        dropout=float(config.get("hidden_dropout_prob", 0.1)),
        position="learned",
        max_position=setting(config, "max_position_embeddings", directory),
        tie_embeddings=is_tied(tensors, BERT_LAYOUT),
        layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
        norm_placement="post",
        embedding_norm=True,
        final_norm=False,
        token_type_vector=True,
        lm_head_transform=True,
        attention=saved_attention(config, directory),
    )
    state_dict = build_state_dict(tensors, BERT_LAYOUT, model_config, vocab, vocab_size)
    return ImportedModel(
        config=model_config, state_dict=state_dict, kind="hf-bert", source=str(directory),
        dropped_tokens=list(vocab.dropped), unpredicted_tokens=list(vocab.missing),
        ignored=tensors.unused(),
    )
