"""The settings of an exact -> Performer conversion (``convert.*`` of ``protperf-convert``) and
the defaults of its trainer and data, in one place.

Light on purpose (no torch, no Lightning): the command's typed root imports it at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protperf.errors import ConfigError, config_key

SCHEDULES = ("constant", "cosine", "linear")
TRAINABLE = ("qk", "qk_features", "all")
PERFORMER_KINDS = ("favor_softmax", "favor_relu")

#: The attention a conversion gives when none is typed (``model.attention.*``). The features
#: are part of the converted model (trained with ``qk_features``, matched by q/k otherwise), so
#: they are never redrawn, also when the output is fine-tuned further (``train init_from=``).
DEFAULT_ATTENTION: dict[str, Any] = {"kind": "favor_softmax", "num_features": 256,
                                     "redraw_interval": 0}
#: Trainer settings of a conversion that differ from ``TrainerConfig``'s (and, without Hydra,
#: the keyword arguments of the Lightning trainer :func:`protperf.transfer.convert` builds).
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_steps": 400,
    "val_check_interval": 50,
    "gradient_clip_val": 0.0,
    "log_every_n_steps": 10,
}
#: Data settings of a conversion that differ from ``DataConfig``'s.
DATA_DEFAULTS: dict[str, Any] = {"batch_size": 4}


@dataclass
class ConvertSettings:
    """How the Performer learns from its exact teacher (``convert.*``).

    trainable: ``qk_features`` (the query and key projections, all that decides where a
        head looks, and each layer's (m, head_dim) feature projection: a learned feature map,
        saved as the checkpoint's ``feature_projection``; values, output projections and every
        other weight stay the source's), ``qk`` (the projections only, the features stay
        random) or ``all``. Chosen on AntiBERTy's PDB antibody test set (ReLU m = 256, 400
        steps: 100.0 % of exact accuracy with ``qk_features``, 96.7 % with ``qk``, 98.4 % with
        ``all``; softmax 99.8 % / 99.5 %) and confirmed, never tuned, on repertoire antibodies
        of another origin (ReLU 99.4 / 95.6 / 97.0 %; softmax 99.3 % either way).
    lr: AdamW's peak learning rate (no weight decay), reached after ``warmup_steps`` linear
        steps, then ``schedule`` (``constant``, or ``cosine`` / ``linear`` decay to
        ``min_lr_ratio * lr`` at ``trainer.max_steps``).
    polish_steps: the last this many of ``trainer.max_steps`` train on the source's own
        objective (masked LM or next token, labels from the data) instead of attention
        transfer; 0 = label-free transfer only.
    target_recovery: stop once Performer accuracy / exact accuracy on the validation split
        reaches this (null: run every step); the output holds the best step either way. Off
        by default: the validation split shares the training data's origin and flatters,
        so a target met there may not be met on the sequences you care about.
    feature_seed: the seed of the Performer's random features (stored in the output).
    """

    trainable: str = "qk_features"
    lr: float = 1e-3
    warmup_steps: int = 10
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    polish_steps: int = 0
    target_recovery: float | None = None
    feature_seed: int = 0

    def validate(self, prefix: str = "convert") -> None:
        """Raise :class:`ConfigError` naming ``<prefix>.<key>`` of a bad value."""

        def key(name: str) -> str:
            return config_key(prefix, name)

        if self.trainable not in TRAINABLE:
            raise ConfigError(f"{key('trainable')}={self.trainable!r} is not one of "
                              f"{', '.join(TRAINABLE)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"{key('schedule')}={self.schedule!r} is not one of "
                              f"{', '.join(SCHEDULES)}")
        if self.lr <= 0:
            raise ConfigError(f"{key('lr')}={self.lr} must be positive")
        for name in ("warmup_steps", "polish_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{key(name)}={getattr(self, name)} must be >= 0")
        if self.target_recovery is not None and not 0.0 < self.target_recovery:
            raise ConfigError(f"{key('target_recovery')}={self.target_recovery} must be > 0 "
                              "(or null: no early stop)")


def check_performer_attention(attention: dict[str, Any], prefix: str = "model.attention") -> None:
    """A conversion's target attention: a Performer kind with at least one random feature."""
    kind, features = attention.get("kind"), attention.get("num_features")
    if kind not in PERFORMER_KINDS:
        raise ConfigError(f"{prefix}.kind={kind} is not a Performer: convert makes one of "
                          f"{', '.join(PERFORMER_KINDS)}")
    if features is not None and (not isinstance(features, int) or features < 1):
        raise ConfigError(f"{prefix}.num_features={features} must be >= 1")
