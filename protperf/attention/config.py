"""Typed configuration of the attention module (mirrored by ``conf/model/*.yaml``).

Checked by :meth:`AttentionConfig.validate` (called by ``ModelConfig.validate``), once.
"""

from __future__ import annotations

from dataclasses import dataclass

from protperf.errors import ConfigError, config_key

ATTENTION_KINDS = ("exact", "favor_softmax", "favor_relu", "identity")
FEATURE_TYPES = ("orthogonal", "iid", "simplex", "favorpp")
NORM_SCALINGS = ("chi", "sqrt_d")
BACKENDS = ("auto", "torch", "fla")


#: The one text of "the fla backend without flash-linear-attention" (attention and the
#: start-up machine check of :mod:`protperf.cli.machine` both raise it).
FLA_MISSING = ("model.attention.backend='fla' needs flash-linear-attention and Triton: "
               "pip install 'protperf[gpu]' (or use backend=auto)")

@dataclass
class AttentionConfig:
    """Which attention a multi-head layer computes, and its Performer settings.

    kind: ``exact`` (softmax via scaled_dot_product_attention), ``favor_softmax``
        (FAVOR+ positive random features), ``favor_relu`` (generalized ReLU attention) or
        ``identity`` (values passed through; a floor for benchmarks).
    num_features: m, the number of random features (Performer kinds only).
    redraw_interval: the training loop redraws the random features every this many
        optimizer steps (0 = never redraw). Never redrawn in eval.
    chunk_size: block size C of the chunked causal algorithm (exact inside a chunk, a carried
        m x d state across chunks); None (default) = the head dim, at least 16: the saved
        states then stay near L*m floats and the exact C x C blocks cost about as much as the
        state updates (the fastest C in the CPU sweeps for head dims 32 and 64).
    feature_type: random projection rows: ``orthogonal`` (block-orthogonal via QR, FAVOR+),
        ``iid`` (independent Gaussian rows), ``simplex`` (simplex random features, SimRFs) or
        ``favorpp`` (FAVOR++ optimized positive random features on orthogonal rows;
        ``favor_softmax`` bidirectional only, since its optimal parameter depends on all keys).
    norm_scaling: row norms of orthogonal/simplex rows: ``chi`` (chi(d)-distributed, unbiased
        softmax estimator) or ``sqrt_d`` (all rows of norm sqrt(d)).
    relu_eps: the epsilon of ReLU features relu(Wx) + eps (keeps the normalizer positive).
    no_projection: ``favor_relu`` only: features relu(x) + eps without a random projection
        (m = head_dim; num_features is ignored).
    backend: causal Performer kernel: ``auto`` (flash-linear-attention's Triton kernels for
        CUDA tensors when the ``gpu`` extra is installed, torch otherwise), ``torch`` or
        ``fla`` (CUDA + fla required, checked when the layer is built).
    """

    kind: str = "exact"
    num_features: int = 256
    redraw_interval: int = 1000
    chunk_size: int | None = None
    feature_type: str = "orthogonal"
    norm_scaling: str = "chi"
    relu_eps: float = 1e-3
    no_projection: bool = False
    backend: str = "auto"

    def validate(self, prefix: str = "model.attention") -> None:
        """Check every field; raise :class:`ConfigError` naming ``<prefix>.<key>`` (the
        default is this config's place in the model configs)."""

        def key(name: str) -> str:
            return config_key(prefix, name)

        if self.kind not in ATTENTION_KINDS:
            raise ConfigError(
                f"{key('kind')}={self.kind!r} is not one of {', '.join(ATTENTION_KINDS)}"
            )
        if self.feature_type not in FEATURE_TYPES:
            raise ConfigError(
                f"{key('feature_type')}={self.feature_type!r} is not one of "
                f"{', '.join(FEATURE_TYPES)}"
            )
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"{key('backend')}={self.backend!r} is not one of {', '.join(BACKENDS)}"
            )
        if self.norm_scaling not in NORM_SCALINGS:
            raise ConfigError(
                f"{key('norm_scaling')}={self.norm_scaling!r} is not one of "
                f"{', '.join(NORM_SCALINGS)}"
            )
        for name in ("num_features", "chunk_size"):
            value = getattr(self, name)
            if name == "chunk_size" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{key(name)} must be an integer > 0, got {value!r}")
        if (
            isinstance(self.redraw_interval, bool)
            or not isinstance(self.redraw_interval, int)
            or self.redraw_interval < 0
        ):
            raise ConfigError(
                f"{key('redraw_interval')} must be an integer >= 0, got {self.redraw_interval!r}"
            )
        if not self.relu_eps >= 0.0:
            raise ConfigError(f"{key('relu_eps')} must be >= 0, got {self.relu_eps!r}")
        if self.no_projection and self.kind != "favor_relu":
            raise ConfigError(
                f"{key('no_projection')}=True needs {key('kind')}='favor_relu', got {self.kind!r}"
            )
        if self.feature_type == "favorpp" and self.kind == "favor_relu":
            raise ConfigError(
                f"{key('feature_type')}='favorpp' is a softmax-kernel estimator; "
                f"use {key('kind')}='favor_softmax'"
            )

    def causal_chunk_size(self, head_dim: int) -> int:
        """The chunk size C used for a head dim: ``chunk_size``, or max(16, head_dim)."""
        return self.chunk_size if self.chunk_size is not None else max(16, head_dim)

    @property
    def is_performer(self) -> bool:
        """True for the random-feature (FAVOR) kinds."""
        return self.kind in ("favor_softmax", "favor_relu")

    @property
    def feature_kernel(self) -> str | None:
        """The kernel the Performer features estimate: ``softmax``, ``relu``, or None."""
        return {"favor_softmax": "softmax", "favor_relu": "relu"}.get(self.kind)
