"""Typed configuration of the language models and their training (mirrored by ``conf/``).

The YAML files under ``conf/model``, ``conf/task``, ``conf/trainer`` ... are merged into these
dataclasses by Hydra (see :mod:`protperf.cli.registry`), so an unknown key or a wrong type is
rejected by OmegaConf, and :func:`validate` checks the relations between keys (heads dividing
the width, the window fitting the positional table, ...) with messages naming the keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protperf.attention import ATTENTION_KINDS, AttentionConfig
from protperf.errors import ConfigError

POSITION_KINDS = ("learned", "rotary", "none")
NORM_PLACEMENTS = ("pre", "post")
OBJECTIVES = ("mlm", "clm")
SCHEDULES = ("cosine", "linear", "constant")


@dataclass
class ModelConfig:
    """Architecture of the Transformer / Performer language model.

    name: the model's name in tables and run directories (``conf/model/<name>.yaml``).
    dim: model width D.  num_heads: H (must divide D).  num_layers: number of blocks.
    ffn_dim: hidden width of the GELU feed-forward network.
    dropout: dropout on embeddings, attention output and feed-forward output.
    position: ``learned`` absolute positions (as in the Performer paper), ``rotary`` (RoPE on
        queries/keys) or ``none``.
    max_position: size of the learned positional table; inputs longer than this are rejected.
    vocab_size: must match the alphabet (checked when loading a checkpoint).
    tie_embeddings: share the LM head's weight with the token embedding.
    layer_norm_eps: epsilon of every LayerNorm.
    attention: which attention each block computes (exact, Performer-Softmax, Performer-ReLU).

    Knobs for imported pretrained architectures (:mod:`protperf.pretrained`); the defaults are
    protperf's own architecture:

    norm_placement: ``pre`` (x + f(LN(x)), protperf and ESM-2) or ``post`` (LN(x + f(x)), BERT).
    embedding_norm: a LayerNorm on the embeddings before the first block (BERT).
    final_norm: a LayerNorm after the last block (protperf, ESM-2's ``emb_layer_norm_after``);
        False for BERT, whose post-LN blocks end in a LayerNorm.
    token_type_vector: a learned vector added to every token embedding (BERT's token type 0).
    token_dropout: ESM-2's mask-token dropout: ``<mask>`` embeddings are zeroed and every
        embedding is scaled by (1 - 0.15 * 0.8) / (1 - masked fraction of the real tokens), in
        training and inference alike, as fair-esm does.
    lm_head_transform: the LM head first applies dense + GELU + LayerNorm (ESM-2, BERT).
    """

    name: str = "performer_relu"
    dim: int = 128
    num_heads: int = 4
    num_layers: int = 2
    ffn_dim: int = 512
    dropout: float = 0.1
    position: str = "learned"
    max_position: int = 8192
    vocab_size: int = 30
    tie_embeddings: bool = True
    layer_norm_eps: float = 1e-5
    norm_placement: str = "pre"
    embedding_norm: bool = False
    final_norm: bool = True
    token_type_vector: bool = False
    token_dropout: bool = False
    lm_head_transform: bool = False
    attention: AttentionConfig = field(default_factory=lambda: AttentionConfig(kind="favor_relu"))


@dataclass
class TaskConfig:
    """The training objective.

    objective: ``mlm`` (bidirectional masked LM, accuracy on masked tokens) or ``clm``
        (unidirectional causal LM, accuracy on next tokens).
    """

    objective: str = "mlm"

    @property
    def causal(self) -> bool:
        return self.objective == "clm"


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then decay (per optimizer step).

    schedule: ``cosine`` or ``linear`` decay to ``min_lr_ratio * lr`` at the last step, or
        ``constant`` after warm-up.
    """

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    weight_decay: float = 0.1
    warmup_steps: int = 50
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1


def validate_model(model: ModelConfig) -> None:
    """Check a model config; raise :class:`ConfigError` naming the offending ``model.*`` key."""
    for key in ("dim", "num_heads", "num_layers", "ffn_dim", "vocab_size", "max_position"):
        if getattr(model, key) <= 0:
            raise ConfigError(f"model.{key}={getattr(model, key)} must be positive")
    if model.dim % model.num_heads:
        raise ConfigError(
            f"model.num_heads={model.num_heads} does not divide model.dim={model.dim}"
        )
    if model.position not in POSITION_KINDS:
        raise ConfigError(
            f"model.position={model.position!r} is not one of {', '.join(POSITION_KINDS)}"
        )
    if model.position == "rotary" and (model.dim // model.num_heads) % 2:
        raise ConfigError(
            f"model.position=rotary needs an even head size, got model.dim/model.num_heads="
            f"{model.dim // model.num_heads}"
        )
    if model.norm_placement not in NORM_PLACEMENTS:
        raise ConfigError(
            f"model.norm_placement={model.norm_placement!r} is not one of "
            f"{', '.join(NORM_PLACEMENTS)}"
        )
    if not 0.0 <= model.dropout < 1.0:
        raise ConfigError(f"model.dropout={model.dropout} must be in [0, 1)")
    kind = model.attention.kind
    if kind not in ATTENTION_KINDS:
        raise ConfigError(
            f"model.attention.kind={kind!r} is not one of {', '.join(ATTENTION_KINDS)}"
        )
