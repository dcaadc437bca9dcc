"""protperf -> a Hugging Face ``EsmForMaskedLM`` directory, for models of ESM-2's architecture.

``protperf-export CKPT --out DIR --format esm`` writes what ``transformers`` loads with
``EsmForMaskedLM.from_pretrained(DIR)`` and ``AutoTokenizer.from_pretrained(DIR)`` (no protperf
needed), with the logits of the protperf model.

Which models: a masked LM (``task.objective=mlm``) with rotary positions, pre-LayerNorm blocks,
a final LayerNorm, the LM-head transform and no token-type vector (``model.position``,
``model.norm_placement``, ``model.final_norm``, ``model.lm_head_transform``,
``model.token_type_vector``); an embedding LayerNorm and token dropout carry over (ESM's
``emb_layer_norm_before`` / ``token_dropout``). Attention must be exact: transformers' ESM
computes exact softmax attention, so a Performer is refused unless ``as_exact`` (``--as-exact``)
asks to write its weights for exact attention (the same parameters; the outputs are then those
of ``model.attention.kind=exact``, not the Performer's).

Tokens: the directory's ``vocab.txt`` is protperf's alphabet in id order (``<pad>`` 0,
``<mask>`` 1, ``<cls>`` 2, ``<eos>`` 3, ``<unk>`` 4, ``A C D ... Y`` 5-24, ``X B Z U O``
25-29). The special tokens already have ESM's names, so ``EsmTokenizer`` reads the file and
encodes ``MKT`` as ``<cls> M K T <eos>`` with protperf's ids; no embedding row moves. The
vocabulary differs from facebook/esm2_*'s (33 tokens in another order, with ``.``, ``-`` and
``<null_1>``): use the tokenizer saved in the directory.

Rotary: protperf rotates consecutive pairs of a head's dims, ESM rotates dims i and i + Dh/2
together; the query and key rows of every head are reordered (an exact change of basis,
:func:`protperf.model.rotary.pairs_from_halves`). ESM's contact head, which protperf does not
train, is written as zeros.
"""

from __future__ import annotations

from pathlib import Path

import torch

from protperf import __version__
from protperf.checkpoint.atomic import atomic_directory
from protperf.checkpoint.export_dir import EXPORT_MARK, check_output_dir
from protperf.checkpoint.layouts import HF_ESM_LAYOUT, reorder_heads
from protperf.checkpoint.load import SavedModel, build_model, resolve_configs
from protperf.data.alphabet import ALPHABET
from protperf.errors import ConfigError, require
from protperf.model.config import ModelConfig, TaskConfig
from protperf.model.rotary import pairs_from_halves


def esm_incompatibilities(
    model: ModelConfig, task: TaskConfig, as_exact: bool = False
) -> list[str]:
    """Why a model cannot be written as ``EsmForMaskedLM``, one reason per config key."""
    problems = []
    if task.objective != "mlm":
        problems.append(f"task.objective={task.objective!r} (EsmForMaskedLM is a masked LM)")
    if model.position != "rotary":
        problems.append(f"model.position={model.position!r} (ESM-2 uses rotary positions)")
    if model.norm_placement != "pre":
        problems.append(f"model.norm_placement={model.norm_placement!r} (ESM-2 is pre-LayerNorm)")
    if not model.final_norm:
        problems.append("model.final_norm=False (ESM-2 ends in a LayerNorm)")
    if not model.lm_head_transform:
        problems.append("model.lm_head_transform=False (ESM-2's LM head has a dense + GELU + "
                        "LayerNorm transform)")
    if model.token_type_vector:
        problems.append("model.token_type_vector=True (ESM-2 has no token-type vector)")
    if model.attention.kind != "exact" and not as_exact:
        problems.append(f"model.attention.kind={model.attention.kind!r} (transformers' ESM "
                        "computes exact attention; --as-exact writes these weights for it)")
    return problems


def esm_config(model: ModelConfig):
    """The ``transformers.EsmConfig`` of a protperf model (vocabulary: protperf's alphabet)."""
    transformers = require("transformers", "protperf-export --format esm")
    alphabet = ALPHABET
    return transformers.EsmConfig(
        vocab_size=model.vocab_size, pad_token_id=alphabet.pad_id,
        mask_token_id=alphabet.mask_id, bos_token_id=alphabet.cls_id,
        eos_token_id=alphabet.eos_id, hidden_size=model.dim,
        num_hidden_layers=model.num_layers, num_attention_heads=model.num_heads,
        intermediate_size=model.ffn_dim, hidden_dropout_prob=model.dropout,
        attention_probs_dropout_prob=model.dropout, max_position_embeddings=model.max_position,
        layer_norm_eps=model.layer_norm_eps, position_embedding_type="rotary",
        emb_layer_norm_before=model.embedding_norm, token_dropout=model.token_dropout,
        tie_word_embeddings=model.tie_embeddings, architectures=["EsmForMaskedLM"],
        **{EXPORT_MARK: __version__},
    )


def esm_state_dict(state: dict[str, torch.Tensor], model: ModelConfig) -> dict[str, torch.Tensor]:
    """protperf's state dict -> ``EsmForMaskedLM``'s names (``HF_ESM_LAYOUT``, the importer's
    map read backwards), query/key rows reordered into ESM's rotate-half layout."""
    layout = HF_ESM_LAYOUT
    halves = pairs_from_halves(model.dim // model.num_heads).argsort()
    out = {layout.embed: state["token_embedding.weight"]}

    def module(source: str, target: str) -> None:
        for part in ("weight", "bias"):
            out[f"{target}.{part}"] = state[f"{source}.{part}"]

    if model.embedding_norm:
        module("embedding_norm", "esm.embeddings.layer_norm")
    for i in range(model.num_layers):
        src, dst = f"blocks.{i}.", layout.layer.format(i=i)
        for source, target in (("attn.q_proj", layout.query), ("attn.k_proj", layout.key),
                               ("attn.v_proj", layout.value), ("attn.out_proj", layout.attn_out),
                               ("attn_norm", layout.attn_norm), ("ffn_norm", layout.ffn_norm),
                               ("ffn.fc_in", layout.ffn_in), ("ffn.fc_out", layout.ffn_out)):
            module(src + source, dst + target)
        for target in (layout.query, layout.key):
            for part in ("weight", "bias"):
                name = f"{dst}{target}.{part}"
                out[name] = reorder_heads(out[name], model.num_heads, halves)
    module("final_norm", layout.final_norm)
    module("lm_transform.dense", layout.head_dense)
    module("lm_transform.norm", layout.head_norm)
    out[layout.head_weight] = state["lm_head.weight"]
    out[layout.head_bias] = state["lm_head.bias"]
    return {name: tensor.detach().clone().contiguous() for name, tensor in out.items()}


def export_esm(
    saved: SavedModel, out: str | Path, as_exact: bool = False, card: str | None = None,
    force: bool = False,
) -> Path:
    """Write ``saved`` as an ``EsmForMaskedLM`` directory at ``out`` (complete or untouched;
    ``force``: into an existing directory, replacing only the files written here), with
    ``card`` as its README.md."""
    transformers = require("transformers", "protperf-export --format esm")
    out = Path(out)
    check_output_dir(out, force)
    model_config, task_config = resolve_configs(saved)
    problems = esm_incompatibilities(model_config, task_config, as_exact)
    if problems:
        raise ConfigError(f"{saved.source} cannot be exported as EsmForMaskedLM: "
                          + "; ".join(problems))
    network = build_model(saved, model_overrides={"attention": {"kind": "exact"}})
    config = esm_config(network.config)
    torch.manual_seed(0)
    hf_model = transformers.EsmForMaskedLM(config)
    target = hf_model.state_dict()
    weights = esm_state_dict(network.state_dict(), network.config)
    for name, tensor in weights.items():
        if name not in target or target[name].shape != tensor.shape:
            raise ConfigError(f"{saved.source}: tensor {name} does not fit EsmForMaskedLM "
                              f"({tuple(tensor.shape)})")
    with torch.no_grad():
        for parameter in hf_model.esm.contact_head.parameters():
            parameter.zero_()
    hf_model.load_state_dict({**target, **weights})
    with atomic_directory(out, "export directory") as staging:
        hf_model.save_pretrained(staging)
        (staging / "vocab.txt").write_text("\n".join(ALPHABET.tokens) + "\n")
        transformers.EsmTokenizer(vocab_file=str(staging / "vocab.txt")).save_pretrained(staging)
        if card is not None:
            (staging / "README.md").write_text(card)
    return out
