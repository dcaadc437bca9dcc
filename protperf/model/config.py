"""Typed configuration of the language models and their training (mirrored by ``conf/``).

The YAML files under ``conf/model``, ``conf/task``, ``conf/trainer`` ... are merged into these
dataclasses by Hydra (see :mod:`protperf.cli.registry`), so an unknown key or a wrong type is
rejected by OmegaConf, and each dataclass's ``validate(prefix)`` checks its values and the
relations between them (heads dividing the width, ...) with messages naming the full keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protperf.attention.config import AttentionConfig
from protperf.errors import ConfigError, config_key

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

    def validate(self, prefix: str = "model") -> None:
        """Check the model; raise :class:`ConfigError` naming the ``<prefix>.*`` key."""

        def key(name: str) -> str:
            return config_key(prefix, name)

        for name in ("dim", "num_heads", "num_layers", "ffn_dim", "vocab_size", "max_position"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{key(name)}={getattr(self, name)} must be positive")
        if self.dim % self.num_heads:
            raise ConfigError(
                f"{key('num_heads')}={self.num_heads} does not divide {key('dim')}={self.dim}"
            )
        if self.position not in POSITION_KINDS:
            raise ConfigError(
                f"{key('position')}={self.position!r} is not one of {', '.join(POSITION_KINDS)}"
            )
        if self.position == "rotary" and (self.dim // self.num_heads) % 2:
            raise ConfigError(
                f"{key('position')}=rotary needs an even head size, got "
                f"{key('dim')}/{key('num_heads')}={self.dim // self.num_heads}"
            )
        if self.norm_placement not in NORM_PLACEMENTS:
            raise ConfigError(
                f"{key('norm_placement')}={self.norm_placement!r} is not one of "
                f"{', '.join(NORM_PLACEMENTS)}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{key('dropout')}={self.dropout} must be in [0, 1)")
        self.attention.validate(key("attention"))


@dataclass
class TaskConfig:
    """The training objective.

    objective: ``mlm`` (bidirectional masked LM, accuracy on masked tokens) or ``clm``
        (unidirectional causal LM, accuracy on next tokens).
    """

    objective: str = "mlm"

    def validate(self, prefix: str = "task") -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"{config_key(prefix, 'objective')}={self.objective!r} is not "
                              f"one of {', '.join(OBJECTIVES)}")

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

    def validate(self, prefix: str = "optim") -> None:
        def key(name: str) -> str:
            return config_key(prefix, name)

        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"{key('schedule')}={self.schedule!r} is not one of {', '.join(SCHEDULES)}"
            )
        if self.lr <= 0:
            raise ConfigError(f"{key('lr')}={self.lr} must be positive")
        if self.warmup_steps < 0:
            raise ConfigError(f"{key('warmup_steps')}={self.warmup_steps} must be >= 0")
