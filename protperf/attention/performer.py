"""Performer attention of projected heads: a feature map, then a linear-attention kernel.

Built once per layer (kernel kind, direction and causal backend fixed at construction);
called with q, k, v: (B, H, L, d) -> (B, H, L, d) in v's dtype.

Precision policy under bf16 autocast: feature exponents, stabilizers, exp, the scan states,
the decay factors and the final division by the normalizer run in float32; the feature
tensors, values and the attention matmuls take bfloat16 (fp32 accumulation inside the
matmuls and fla's kernels). fp16 autocast runs all of it in float32; float64 inputs run in
float64 throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch

from protperf.attention.backends import CausalKernel
from protperf.attention.ops.feature_maps import (
    KERNELS,
    relu_feature_maps,
    softmax_feature_maps,
)
from protperf.attention.ops.linear import (
    augment_values,
    bidirectional_unnormalized,
    normalize,
    segmented_bidirectional_unnormalized,
)


def low_precision_dtype(device_type: str) -> torch.dtype | None:
    """bfloat16 when bf16 autocast is active for the device type, else None (float32).

    float16 autocast keeps Performer attention in float32: the gradient of the division by
    a small normalizer (num / D^2) overflows float16's range (max 65504), not bfloat16's.
    """
    if not torch.is_autocast_enabled(device_type):
        return None
    dtype = torch.get_autocast_dtype(device_type)
    return dtype if dtype == torch.bfloat16 else None


@dataclass(frozen=True)
class PerformerAttention:
    """FAVOR+ softmax or ReLU attention with a fixed direction and causal kernel."""

    kernel: str
    causal: bool
    relu_eps: float = 1e-3
    favorpp: bool = False
    causal_kernel: CausalKernel | None = None
    feature_map: Callable[..., tuple] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be 'softmax' or 'relu', got {self.kernel!r}")
        if self.causal and self.causal_kernel is None:
            raise ValueError("causal Performer attention needs a causal kernel")
        # (q, k, projection, key_mask, segment_ids) -> (q', k', s or None), fixed here
        if self.kernel == "softmax":
            feature_map = partial(_softmax_maps, causal_keys=self.causal, favorpp=self.favorpp)
        else:
            feature_map = partial(_relu_maps, relu_eps=self.relu_eps)
        object.__setattr__(self, "feature_map", feature_map)

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        projection: torch.Tensor | None,
        key_mask: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """q, k: (B, H, L, d), v: (B, H, L, dv); key_mask, segment_ids: (B, L) or None."""
        out_dtype = v.dtype
        low = low_precision_dtype(v.device.type) if v.dtype != torch.float64 else None
        q_prime, k_prime, log_scale = self.feature_map(q, k, projection, key_mask, segment_ids)
        wide = q_prime.dtype
        with torch.autocast(device_type=v.device.type, enabled=False):
            v_aug = augment_values(v.to(low or wide))
            if self.causal:
                out = self.causal_kernel(q_prime, k_prime, v_aug, log_scale, segment_ids,
                                         compute_dtype=low)
            else:
                q_low, k_low = q_prime.to(v_aug.dtype), k_prime.to(v_aug.dtype)
                if segment_ids is None:
                    out = bidirectional_unnormalized(q_low, k_low, v_aug)
                else:
                    out = segmented_bidirectional_unnormalized(q_low, k_low, v_aug, segment_ids)
            return normalize(out).to(out_dtype)


def _softmax_maps(q, k, projection, key_mask, segment_ids, causal_keys, favorpp):
    return softmax_feature_maps(q, k, projection, key_mask, causal_keys, favorpp, segment_ids)


def _relu_maps(q, k, projection, key_mask, segment_ids, relu_eps):
    return (*relu_feature_maps(q, k, projection, key_mask, relu_eps), None)
