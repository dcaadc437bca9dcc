"""ESM-2: fair-esm ``.pt`` checkpoints (``model`` / ``cfg`` entries) and HF ``EsmForMaskedLM``
directories.

ESM-2 is a pre-LayerNorm Transformer with rotary positions, biases on every projection, a
final LayerNorm (``emb_layer_norm_after``), an LM head with a dense + GELU + LayerNorm
transform tied to the token embedding, and token dropout. Its rotary embedding rotates dims
i and i + Dh/2 together (rotate-half); the query/key rows are reordered into protperf's
consecutive pairs, an exact change of basis. The contact head is left out (listed).
Older fair-esm generations (ESM-1, ESM-1b, ESM-1v, MSA Transformer, ESM-IF) are refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from protperf.attention import AttentionConfig
from protperf.checkpoint.imported import ImportedModel
from protperf.checkpoint.layouts import FAIR_ESM_LAYOUT, HF_ESM_LAYOUT, Layout
from protperf.errors import PretrainedSourceError, require
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
from protperf.pretrained.weights import load_pickled, read_hf_weights

#: fair-esm ``args.arch`` of the generations protperf does not import.
OLDER_GENERATIONS = {
    "roberta_large": "ESM-1b / ESM-1v",
    "protein_bert_base": "ESM-1",
    "msa_transformer": "ESM-MSA-1",
}
SUPPORTED = "protperf imports ESM-2 checkpoints (esm2_t*_*.pt) only"
# fair-esm strips these prefixes of the stored names (esm.pretrained upgrade_state_dict)
FAIR_ESM_PREFIXES = re.compile(r"^(encoder\.sentence_encoder\.|encoder\.)")


def import_fair_esm(path: Path) -> ImportedModel:
    """Convert a fair-esm ESM-2 ``.pt`` file (read with ``weights_only=True``)."""
    data = load_pickled(path)
    if not isinstance(data, dict) or "model" not in data:
        raise PretrainedSourceError(
            f"{path} is not a fair-esm checkpoint (no 'model' entry); {SUPPORTED}"
        )
    cfg = _esm2_model_cfg(data, path)
    state = {FAIR_ESM_PREFIXES.sub("", name): t for name, t in data["model"].items()}
    tensors = SourceTensors(state, str(path))
    esm_data = require("esm.data", f"reading the ESM-2 vocabulary for {path}")
    tokens = list(esm_data.Alphabet.from_architecture("ESM-1b").all_toks)
    vocab = map_vocabulary(tokens, f"{path} (fair-esm's ESM-1b/ESM-2 alphabet)")
    dim = _cfg_int(cfg, "encoder_embed_dim", path)
    config = ModelConfig(
        name=f"esm2-{path.stem}",
        dim=dim,
        num_heads=_cfg_int(cfg, "encoder_attention_heads", path),
        num_layers=_cfg_int(cfg, "encoder_layers", path),
        ffn_dim=4 * dim,  # fair-esm's ESM2 class fixes the MLP width at 4 x dim
        **_esm2_knobs(bool(getattr(cfg, "token_dropout", True)), tied=is_tied(tensors,
                                                                              FAIR_ESM_LAYOUT)),
    )
    state_dict = build_state_dict(tensors, FAIR_ESM_LAYOUT, config, vocab, len(tokens),
                                  layers_key="cfg['model'].encoder_layers")
    return ImportedModel(
        config=config, state_dict=state_dict, kind="fair-esm", source=str(path),
        dropped_tokens=list(vocab.dropped), unpredicted_tokens=list(vocab.missing),
        ignored=tensors.unused(),
    )


def import_hf_esm(directory: Path, vocab_file: Path | None = None) -> ImportedModel:
    """Convert an HF ``EsmForMaskedLM`` directory (config.json, vocab.txt, weights)."""
    config = read_config(directory)
    architectures = config.get("architectures") or ["EsmForMaskedLM"]
    if "EsmForMaskedLM" not in architectures or config.get("is_folding_model"):
        raise PretrainedSourceError(
            f"{directory / 'config.json'} describes {', '.join(map(str, architectures))}, not "
            "a masked LM; protperf imports EsmForMaskedLM directories"
        )
    require_value(config, "position_embedding_type", ("rotary",), "absolute", directory)
    require_value(config, "hidden_act", ("gelu",), "gelu", directory)
    vocab_size = setting(config, "vocab_size", directory)
    tokens, vocab_path = read_vocab(directory, vocab_size, vocab_file)
    vocab = map_vocabulary(tokens, str(vocab_path))
    state, weights_name = read_hf_weights(directory)
    tensors = SourceTensors(state, str(directory / weights_name))
    for name in ("esm.embeddings.position_ids",):
        if tensors.has(name):
            tensors.mark_used(name)
    embedding_norm = bool(config.get("emb_layer_norm_before", False))
    layout = HF_ESM_LAYOUT
    if embedding_norm:
        layout = Layout(**{**vars(HF_ESM_LAYOUT), "embedding_norm": "esm.embeddings.layer_norm"})
    model_config = ModelConfig(
        name=f"esm2-{directory.name}",
        dim=setting(config, "hidden_size", directory),
        num_heads=setting(config, "num_attention_heads", directory),
        num_layers=setting(config, "num_hidden_layers", directory),
        ffn_dim=setting(config, "intermediate_size", directory),
        **_esm2_knobs(bool(config.get("token_dropout", False)), tied=is_tied(tensors, layout),
                      eps=float(config.get("layer_norm_eps", 1e-12)),
                      embedding_norm=embedding_norm,
                      attention=saved_attention(config, directory)),
    )
    state_dict = build_state_dict(tensors, layout, model_config, vocab, vocab_size)
    return ImportedModel(
        config=model_config, state_dict=state_dict, kind="hf-esm", source=str(directory),
        dropped_tokens=list(vocab.dropped), unpredicted_tokens=list(vocab.missing),
        ignored=tensors.unused(),
    )


def _esm2_knobs(token_dropout: bool, tied: bool, eps: float = 1e-5,
                embedding_norm: bool = False,
                attention: AttentionConfig | None = None) -> dict[str, Any]:
    """The ModelConfig keys every ESM-2 shares (attention: exact unless given)."""
    return dict(
        dropout=0.0, position="rotary", tie_embeddings=tied, layer_norm_eps=eps,
        norm_placement="pre", embedding_norm=embedding_norm, final_norm=True,
        token_dropout=token_dropout, lm_head_transform=True,
        attention=attention or AttentionConfig(kind="exact"),
    )


def _esm2_model_cfg(data: dict, path: Path) -> Any:
    """``cfg["model"]`` of an ESM-2 file; one line naming the generation of older files."""
    args = data.get("args")
    arch = getattr(args, "arch", None)
    if arch is not None and "cfg" not in data:
        generation = OLDER_GENERATIONS.get(arch) or (
            "ESM-IF1" if "gvp" in str(arch) else f"arch={arch!r}")
        raise PretrainedSourceError(
            f"{path} is a fair-esm {generation} checkpoint (arch={arch!r}); {SUPPORTED}"
        )
    cfg = data.get("cfg")
    model_cfg = cfg.get("model") if isinstance(cfg, dict) else None
    if model_cfg is None or not hasattr(model_cfg, "encoder_layers"):
        raise PretrainedSourceError(
            f"{path} is not a fair-esm ESM-2 checkpoint (no cfg['model'].encoder_layers); "
            f"{SUPPORTED}"
        )
    return model_cfg


def _cfg_int(cfg: Any, key: str, path: Path) -> int:
    value = getattr(cfg, key, None)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise PretrainedSourceError(f"{path}: cfg['model'].{key}={value!r} is not a positive int")
    return value
