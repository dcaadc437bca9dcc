"""protperf -> a Hugging Face ``EsmForMaskedLM`` directory, for models of ESM-2's architecture.

``protperf-export CKPT --out DIR --format esm`` writes what ``transformers`` loads with
``EsmForMaskedLM.from_pretrained(DIR)`` and ``AutoTokenizer.from_pretrained(DIR)`` (no protperf
needed), with the logits of the protperf model.

Which models: a masked LM (``task.objective=mlm``) with rotary positions, pre-LayerNorm blocks,
a final LayerNorm, the LM-head transform and no token-type vector (``model.position``,
``model.norm_placement``, ``model.final_norm``, ``model.lm_head_transform``,
``model.token_type_vector``); an embedding LayerNorm and token dropout carry over (ESM's
``emb_layer_norm_before`` / ``token_dropout``). BERT-family models (post-LayerNorm, learned
positions) go to ``BertForMaskedLM`` (:mod:`.hf_bert_export`).

Attention: exact models are written exactly as before Performers could leave. A Performer
(``favor_softmax`` / ``favor_relu``) is written for :mod:`protperf.hf`'s attention
implementation: config.json names it (``attn_implementation``) with the FAVOR+ settings, and
each layer's feature projection is a tensor of model.safetensors; transformers then runs it as
a Performer after ``import protperf.hf`` and refuses it otherwise. ``as_exact``
(``--as-exact``) writes a Performer's weights for exact attention instead (the outputs are then
those of ``model.attention.kind=exact``).

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

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from protperf import __version__
from protperf.checkpoint.atomic import atomic_directory
from protperf.checkpoint.export_dir import EXPORT_MARK, check_output_dir
from protperf.checkpoint.layouts import (
    ATTN_IMPLEMENTATION,
    HF_ESM_LAYOUT,
    PERFORMER_SETTINGS_KEY,
    Layout,
    projection_name,
    reorder_heads,
)
from protperf.checkpoint.load import SavedModel, build_model, resolve_configs
from protperf.data.alphabet import ALPHABET
from protperf.errors import ConfigError, require
from protperf.model.config import ModelConfig, TaskConfig
from protperf.model.rotary import pairs_from_halves
from protperf.structured import to_plain


def esm_incompatibilities(
    model: ModelConfig, task: TaskConfig, as_exact: bool = False
) -> list[str]:
    """Why a model cannot be written as ``EsmForMaskedLM``, one reason per config key."""
    return architecture_mismatches(model, task, as_exact, "EsmForMaskedLM", [
        ("position", "rotary", "ESM-2 uses rotary positions"),
        ("norm_placement", "pre", "ESM-2 is pre-LayerNorm"),
        ("final_norm", True, "ESM-2 ends in a LayerNorm"),
        ("lm_head_transform", True,
         "ESM-2's LM head has a dense + GELU + LayerNorm transform"),
        ("token_type_vector", False, "ESM-2 has no token-type vector"),
    ])


def architecture_mismatches(model: ModelConfig, task: TaskConfig, as_exact: bool,
                            class_name: str, wanted: list[tuple[str, object, str]]) -> list[str]:
    """One reason per ``model.<key>`` whose value is not the ``wanted`` one (key, value, why),
    after the masked-LM objective, before the attention's."""
    problems = []
    if task.objective != "mlm":
        problems.append(f"task.objective={task.objective!r} ({class_name} is a masked LM)")
    for key, value, why in wanted:
        if getattr(model, key) != value:
            problems.append(f"model.{key}={getattr(model, key)!r} ({why})")
    return problems + attention_incompatibilities(model, as_exact)


def attention_incompatibilities(model: ModelConfig, as_exact: bool) -> list[str]:
    """Exact and Performer attention export; ``identity`` only ``as_exact``."""
    if model.attention.kind == "identity" and not as_exact:
        return ["model.attention.kind='identity' (transformers runs exact or, through "
                "protperf.hf, Performer attention; --as-exact writes these weights for exact)"]
    return []


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


def rotate_half_order(model: ModelConfig) -> torch.Tensor:
    """Per-head row order taking protperf's rotary pairs to ESM's rotate-half layout."""
    return pairs_from_halves(model.dim // model.num_heads).argsort()


def esm_state_dict(state: dict[str, torch.Tensor], model: ModelConfig) -> dict[str, torch.Tensor]:
    """protperf's state dict -> ``EsmForMaskedLM``'s names (``HF_ESM_LAYOUT``, the importer's
    map read backwards), query/key rows reordered into ESM's rotate-half layout."""
    layout = HF_ESM_LAYOUT
    halves = rotate_half_order(model)
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


def projection_tensors(state: dict[str, torch.Tensor], model: ModelConfig, layout: Layout,
                       column_order: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Each layer's (m, head_dim) feature projection under transformers' name, its columns in
    the order of the exported query/key rows (``column_order``; None: unchanged)."""
    out = {}
    for i in range(model.num_layers):
        key = f"blocks.{i}.attn.feature_projection"
        if key in state:  # not for ReLU without projection
            projection = state[key] if column_order is None else state[key][:, column_order]
            out[projection_name(layout, i)] = projection.detach().clone().contiguous()
    return out


PERFORMER_CARD = """
This model is a Performer (FAVOR+ attention, its feature projections stored with the weights):
transformers runs it as a Performer after `pip install protperf` and `import protperf.hf`,
which registers that attention; without them loading fails instead of running exact attention.
"""


@dataclass(frozen=True)
class HfFamily:
    """How one transformers masked-LM class is written."""

    format: str  # the --format name
    class_name: str  # EsmForMaskedLM / BertForMaskedLM
    layout: Layout
    incompatibilities: Callable[[ModelConfig, TaskConfig, bool], list[str]]
    config: Callable[[ModelConfig], object]
    state_dict: Callable[[dict[str, torch.Tensor], ModelConfig], dict[str, torch.Tensor]]
    column_order: Callable[[ModelConfig], torch.Tensor | None]
    tokenizer: Callable[[Path], None]  # writes vocab.txt + the tokenizer files into a folder
    prepare: Callable[[torch.nn.Module], None] = lambda hf_model: None


def write_esm_tokenizer(folder: Path) -> None:
    transformers = require("transformers", "protperf-export --format esm")
    (folder / "vocab.txt").write_text("\n".join(ALPHABET.tokens) + "\n")
    transformers.EsmTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)


def zero_contact_head(hf_model: torch.nn.Module) -> None:
    """ESM's contact head, which protperf does not train: zeros."""
    with torch.no_grad():
        for parameter in hf_model.esm.contact_head.parameters():
            parameter.zero_()


ESM_FAMILY = HfFamily(
    format="esm", class_name="EsmForMaskedLM", layout=HF_ESM_LAYOUT,
    incompatibilities=esm_incompatibilities, config=esm_config, state_dict=esm_state_dict,
    column_order=rotate_half_order, tokenizer=write_esm_tokenizer, prepare=zero_contact_head)


def mark_performer(config, model: ModelConfig) -> None:
    """Configure a transformers config for protperf.hf's Performer attention."""
    config._attn_implementation = ATTN_IMPLEMENTATION
    setattr(config, PERFORMER_SETTINGS_KEY, to_plain(model.attention))


def record_attn_implementation(config_file: Path) -> None:
    """transformers does not save ``attn_implementation``; write it into config.json (sorted
    keys, two-space indent, as transformers writes the file)."""
    config = json.loads(config_file.read_text())
    config["attn_implementation"] = ATTN_IMPLEMENTATION
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def check_performer_reload(directory: Path, family: HfFamily, network: torch.nn.Module,
                           source: str) -> None:
    """The written Performer, loaded back by transformers, gives protperf's logits on the 20
    amino acids (within 1e-4 of their scale): the installed transformers runs it as one."""
    transformers = require("transformers", f"protperf-export --format {family.format}")
    hf_model = getattr(transformers, family.class_name).from_pretrained(
        directory, local_files_only=True)
    ids = torch.tensor([[ALPHABET.cls_id, *range(5, 25), ALPHABET.eos_id]])
    amino_acids = list(range(5, 25))
    with torch.no_grad():
        expected = network.eval()(ids)[..., amino_acids]
        actual = hf_model.eval()(input_ids=ids).logits[..., amino_acids]
    tolerance = 1e-4 * max(1.0, float(expected.abs().max()))
    if not torch.allclose(actual, expected, rtol=0, atol=tolerance):
        raise ConfigError(
            f"{source}: transformers {transformers.__version__} does not run the exported "
            f"Performer as protperf does (largest logit difference "
            f"{float((actual - expected).abs().max()):.3g}); export it --as-exact, or use "
            "transformers 5")


def export_hf(saved: SavedModel, out: str | Path, family: HfFamily, as_exact: bool = False,
              card: str | None = None, force: bool = False) -> Path:
    """Write ``saved`` as a ``family.class_name`` directory at ``out`` (complete or
    untouched; ``force``: into an existing directory, replacing only the files written here),
    with ``card`` as its README.md; a Performer as protperf.hf's Performer."""
    transformers = require("transformers", f"protperf-export --format {family.format}")
    out = Path(out)
    check_output_dir(out, force)
    model_config, task_config = resolve_configs(saved)
    problems = family.incompatibilities(model_config, task_config, as_exact)
    if problems:
        raise ConfigError(f"{saved.source} cannot be exported as {family.class_name}: "
                          + "; ".join(problems))
    performer = model_config.attention.is_performer and not as_exact
    if performer:
        import protperf.hf  # noqa: F401  (registers the attention the model is built with)

        network = build_model(saved)
    else:
        network = build_model(saved, model_overrides={"attention": {"kind": "exact"}})
    config = family.config(network.config)
    if performer:
        mark_performer(config, network.config)
    torch.manual_seed(0)
    hf_model = getattr(transformers, family.class_name)(config)
    target = hf_model.state_dict()
    state = network.state_dict()
    weights = family.state_dict(state, network.config)
    if performer:
        weights.update(projection_tensors(state, network.config, family.layout,
                                          family.column_order(network.config)))
    for name, tensor in weights.items():
        if name not in target or target[name].shape != tensor.shape:
            raise ConfigError(f"{saved.source}: tensor {name} does not fit {family.class_name} "
                              f"({tuple(tensor.shape)})")
    family.prepare(hf_model)
    hf_model.load_state_dict({**target, **weights})
    with atomic_directory(out, "export directory") as staging:
        hf_model.save_pretrained(staging)
        if performer:
            record_attn_implementation(staging / "config.json")
            check_performer_reload(staging, family, network, saved.source)
        family.tokenizer(staging)
        if card is not None:
            (staging / "README.md").write_text(card + (PERFORMER_CARD if performer else ""))
    return out


def export_esm(
    saved: SavedModel, out: str | Path, as_exact: bool = False, card: str | None = None,
    force: bool = False,
) -> Path:
    """Write ``saved`` as an ``EsmForMaskedLM`` directory at ``out`` (complete or untouched),
    with ``card`` as its README.md."""
    return export_hf(saved, out, ESM_FAMILY, as_exact, card, force)
