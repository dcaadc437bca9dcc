"""Typed configuration of the attention module (mirrored by ``conf/model/*.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass

ATTENTION_KINDS = ("exact", "favor_softmax", "favor_relu", "identity")


@dataclass
class AttentionConfig:
    """Which attention a multi-head layer computes, and its Performer settings.

    kind: ``exact`` (softmax via scaled_dot_product_attention), ``favor_softmax``
        (FAVOR+ positive random features), ``favor_relu`` (generalized ReLU attention) or
        ``identity`` (values passed through; a floor for benchmarks).
    num_features: m, the number of random features (Performer kinds only).
    redraw_interval: redraw the random features every this many training steps
        (0 = never redraw). Never redrawn in eval.
    chunk_size: block size of the chunked causal algorithm.
    """

    kind: str = "exact"
    num_features: int = 256
    redraw_interval: int = 1000
    chunk_size: int = 64

    def __post_init__(self) -> None:
        if self.kind not in ATTENTION_KINDS:
            raise ValueError(
                f"attention.kind={self.kind!r} is not one of {', '.join(ATTENTION_KINDS)}"
            )
