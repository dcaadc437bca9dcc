"""protperf -> a Hugging Face ``BertForMaskedLM`` directory, for BERT-family models (ProtBert,
antibody BERTs such as AntiBERTy, imported and possibly converted to Performers).

Which models: a masked LM with post-LayerNorm blocks, learned positions, an embedding
LayerNorm, no final LayerNorm, the LM-head transform and no token dropout
(``model.norm_placement=post``, ``model.position=learned``, ``model.embedding_norm=true``,
``model.final_norm=false``, ``model.lm_head_transform=true``, ``model.token_dropout=false``).
protperf's token-type vector is BERT's token type 0 (``type_vocab_size=1``; zeros without one).
Attention as in :mod:`.hf_export`: exact, or a Performer through :mod:`protperf.hf`.

Tokens: ``vocab.txt`` is protperf's alphabet in id order with BERT's names for the specials
(``[PAD]`` 0, ``[MASK]`` 1, ``[CLS]`` 2, ``[SEP]`` 3, ``[UNK]`` 4, then ``A C D ... Y`` and
``X B Z U O``), read by ``BertTokenizer`` without lower-casing; as for ProtBert, residues are
given separated by spaces (``"M K T A"``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from protperf import __version__
from protperf.checkpoint.export_dir import EXPORT_MARK
from protperf.checkpoint.hf_export import HfFamily, architecture_mismatches
from protperf.checkpoint.layouts import BERT_LAYOUT
from protperf.data.alphabet import ALPHABET
from protperf.errors import require
from protperf.model.config import ModelConfig, TaskConfig

#: protperf's special tokens under BERT's names (the importer reads them back).
BERT_SPECIALS = {"<pad>": "[PAD]", "<mask>": "[MASK]", "<cls>": "[CLS]", "<eos>": "[SEP]",
                 "<unk>": "[UNK]"}


def bert_incompatibilities(model: ModelConfig, task: TaskConfig, as_exact: bool = False
                           ) -> list[str]:
    """Why a model cannot be written as ``BertForMaskedLM``, one reason per config key."""
    return architecture_mismatches(model, task, as_exact, "BertForMaskedLM", [
        ("position", "learned", "BERT learns absolute positions"),
        ("norm_placement", "post", "BERT is post-LayerNorm"),
        ("embedding_norm", True, "BERT normalizes its embeddings"),
        ("final_norm", False, "BERT has no final LayerNorm"),
        ("lm_head_transform", True,
         "BERT's LM head has a dense + GELU + LayerNorm transform"),
        ("token_dropout", False, "BERT has no token dropout"),
    ])


def bert_config(model: ModelConfig):
    """The ``transformers.BertConfig`` of a protperf model (vocabulary: protperf's alphabet)."""
    transformers = require("transformers", "protperf-export --format bert")
    return transformers.BertConfig(
        vocab_size=model.vocab_size, pad_token_id=ALPHABET.pad_id, hidden_size=model.dim,
        num_hidden_layers=model.num_layers, num_attention_heads=model.num_heads,
        intermediate_size=model.ffn_dim, hidden_act="gelu", hidden_dropout_prob=model.dropout,
        attention_probs_dropout_prob=model.dropout, max_position_embeddings=model.max_position,
        type_vocab_size=1, layer_norm_eps=model.layer_norm_eps,
        tie_word_embeddings=model.tie_embeddings, architectures=["BertForMaskedLM"],
        **{EXPORT_MARK: __version__},
    )


def bert_state_dict(state: dict[str, torch.Tensor], model: ModelConfig
                    ) -> dict[str, torch.Tensor]:
    """protperf's state dict -> ``BertForMaskedLM``'s names (``BERT_LAYOUT`` read backwards)."""
    layout = BERT_LAYOUT
    token_type = state.get("token_type", torch.zeros(model.dim))
    out = {layout.embed: state["token_embedding.weight"],
           layout.position: state["position_embedding.weight"],
           layout.token_type: token_type[None]}

    def module(source: str, target: str) -> None:
        for part in ("weight", "bias"):
            out[f"{target}.{part}"] = state[f"{source}.{part}"]

    module("embedding_norm", layout.embedding_norm)
    for i in range(model.num_layers):
        src, dst = f"blocks.{i}.", layout.layer.format(i=i)
        for source, target in (("attn.q_proj", layout.query), ("attn.k_proj", layout.key),
                               ("attn.v_proj", layout.value), ("attn.out_proj", layout.attn_out),
                               ("attn_norm", layout.attn_norm), ("ffn_norm", layout.ffn_norm),
                               ("ffn.fc_in", layout.ffn_in), ("ffn.fc_out", layout.ffn_out)):
            module(src + source, dst + target)
    module("lm_transform.dense", layout.head_dense)
    module("lm_transform.norm", layout.head_norm)
    out[layout.head_weight] = state["lm_head.weight"]
    out[layout.head_bias] = out[layout.head_bias_copy] = state["lm_head.bias"]
    return {name: tensor.detach().clone().contiguous() for name, tensor in out.items()}


def write_bert_tokenizer(folder: Path) -> None:
    transformers = require("transformers", "protperf-export --format bert")
    tokens = [BERT_SPECIALS.get(token, token) for token in ALPHABET.tokens]
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n")
    transformers.BertTokenizer(str(folder / "vocab.txt"), do_lower_case=False
                               ).save_pretrained(folder)


BERT_FAMILY = HfFamily(
    format="bert", class_name="BertForMaskedLM", layout=BERT_LAYOUT,
    incompatibilities=bert_incompatibilities, config=bert_config, state_dict=bert_state_dict,
    column_order=lambda model: None, tokenizer=write_bert_tokenizer)
