"""Feature maps of Performer attention: random projections, stabilizers, FAVOR+ features.

Shapes: ``x: (..., L, d)`` queries or keys of one head, ``projection: (m, d)``; feature maps
return ``(..., L, m)``; ``key_mask: (B, L)`` bool (True = real token), ``segment_ids: (B, L)``
or None. Softmax features estimate the softmax kernel exp(q.k) for queries and keys already
scaled by d^-1/4 (``scale_for_softmax``):

    phi(x) = exp(W x - |x|^2 / 2 - c) / sqrt(m),   E_W[phi(q).phi(k)] = exp(q.k - c_q - c_k)

where the stabilizer c is a constant that cancels in the attention ratio (one per query row;
for keys one per (batch, head), or a per-position running max that the causal algorithm
undoes exactly). ReLU (generalized) features are relu(W x) + eps.

``performer_feature_maps`` is the one place that tells softmax from ReLU features for the
autograd kernels; the hand-written backwards (features of whole sequences, and of one block
at a time for the kernels that recompute them) are in ``feature_autograd.py``.

Precision: feature exponents, stabilizers and exp run in float32 (float64 for float64
input) with autocast off, whatever the autocast dtype: an exponent of size ~10-100 rounded to
bfloat16 would be off by ~0.05-0.5, a 5-50% error of the feature. The features themselves are
in (0, 1/sqrt(m)] and may then be cast to bfloat16 for the attention matmuls.
"""

from __future__ import annotations

import math

import torch

from protperf.attention.ops.feature_autograd import relu_features_fused, softmax_features
from protperf.attention.ops.segments import dense_segment_ids, segment_max, segmented_running_max


def _haar_orthogonal(num_blocks: int, dim: int, generator: torch.Generator | None) -> torch.Tensor:
    """(num_blocks, dim, dim) independent Haar orthogonal matrices (batched QR, signs fixed)."""
    gaussian = torch.randn(num_blocks, dim, dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)


def _row_norms(
    num_rows: int, dim: int, norm_scaling: str, generator: torch.Generator | None
) -> torch.Tensor:
    """(num_rows,) norms: chi(dim)-distributed (norms of Gaussian vectors) or sqrt(dim)."""
    if norm_scaling == "chi":
        return torch.randn(num_rows, dim, generator=generator, dtype=torch.float64).norm(dim=1)
    if norm_scaling == "sqrt_d":
        return torch.full((num_rows,), math.sqrt(dim), dtype=torch.float64)
    raise ValueError(f"norm_scaling must be 'chi' or 'sqrt_d', got {norm_scaling!r}")


def iid_gaussian_matrix(
    num_features: int, dim: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(m, d) matrix of independent N(0, 1) entries (float32)."""
    return torch.randn(num_features, dim, generator=generator, dtype=torch.float64).float()


def orthogonal_gaussian_matrix(
    num_features: int,
    dim: int,
    norm_scaling: str = "chi",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(m, d) block-orthogonal random features (FAVOR+).

    Rows come in blocks of d mutually orthogonal unit directions (QR of a Gaussian matrix;
    the last block is truncated), each row rescaled to a chi(d)-distributed norm (marginally a
    Gaussian row, so the softmax estimator stays unbiased) or to sqrt(d).
    """
    blocks = _haar_orthogonal(math.ceil(num_features / dim), dim, generator)
    directions = blocks.reshape(-1, dim)[:num_features]
    norms = _row_norms(num_features, dim, norm_scaling, generator)
    return (directions * norms.unsqueeze(1)).float()


def simplex_gaussian_matrix(
    num_features: int,
    dim: int,
    norm_scaling: str = "chi",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(m, d) simplex random features (SimRFs, Reid et al., ICML 2023).

    Each block of d rows points at the d vertices of a regular simplex centred at the origin
    (pairwise cosine -1/(d-1), the most negatively correlated directions possible), randomly
    rotated (Haar), with chi(d) (or sqrt(d)) norms: marginally Gaussian rows, so unbiased.
    """
    if dim < 2:
        raise ValueError(f"simplex random features need head dim >= 2, got {dim}")
    eye = torch.eye(dim, dtype=torch.float64)
    simplex = (eye - 1.0 / dim) * math.sqrt(dim / (dim - 1))  # unit rows, cosine -1/(d-1)
    blocks = simplex @ _haar_orthogonal(math.ceil(num_features / dim), dim, generator)
    directions = blocks.reshape(-1, dim)[:num_features]
    norms = _row_norms(num_features, dim, norm_scaling, generator)
    return (directions * norms.unsqueeze(1)).float()


def draw_projection(
    feature_type: str,
    num_features: int,
    dim: int,
    norm_scaling: str = "chi",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(m, d) random projection for ``feature_type`` in orthogonal | iid | simplex | favorpp.

    FAVOR++ draws orthogonal rows (marginally Gaussian, as its estimator requires).
    """
    if feature_type in ("orthogonal", "favorpp"):
        return orthogonal_gaussian_matrix(num_features, dim, norm_scaling, generator)
    if feature_type == "iid":
        return iid_gaussian_matrix(num_features, dim, generator)
    if feature_type == "simplex":
        return simplex_gaussian_matrix(num_features, dim, norm_scaling, generator)
    raise ValueError(f"unknown feature_type {feature_type!r}")


def scale_for_softmax(x: torch.Tensor) -> torch.Tensor:
    """x: (..., d) -> x * d^-1/4, so that exp(q.k) is the softmax kernel exp(q.k / sqrt(d))."""
    return x * x.shape[-1] ** -0.25


def favorpp_parameter(
    q: torch.Tensor, k: torch.Tensor, key_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Optimal A of FAVOR++ positive features per (batch, head); q, k: (B, H, L, d) -> (B, H).

    Features f(w, x) = (1-4A)^(d/4) exp(A|w|^2 + sqrt(1-4A) w.x - |x|^2/2) are unbiased for
    exp(x.y) for every A < 1/8 (A = 0 is FAVOR+). Minimizing the (log) second moment averaged
    over all (query, key) pairs gives, with u = 1 - 4A and M = mean_ij |q_i + k_j|^2,
    2d u^2 - (3d + 2M) u + d = 0, whose root u >= 1 we take (M = 0 gives A = 0). M is computed
    in linear time from means; masked keys/queries (``key_mask`` (B, L), True = real) are left
    out. The parameter is detached: the estimator is unbiased for any A.
    """
    out_dtype = q.dtype
    q, k = q.detach().double(), k.detach().double()
    d = q.shape[-1]
    if key_mask is None:
        weights = torch.full(q.shape[:1] + q.shape[2:3], 1.0 / q.shape[2], dtype=q.dtype)
        weights = weights.to(q.device)
    else:
        mask = key_mask.to(q.dtype)
        weights = mask / mask.sum(-1, keepdim=True).clamp_min(1.0)
    w = weights[:, None, :, None]  # (B, 1, L, 1)
    mean_sq_q = ((q * q).sum(-1, keepdim=True) * w).sum(-2).squeeze(-1)
    mean_sq_k = ((k * k).sum(-1, keepdim=True) * w).sum(-2).squeeze(-1)
    cross = ((q * w).sum(-2) * (k * w).sum(-2)).sum(-1)
    m2 = mean_sq_q + mean_sq_k + 2.0 * cross
    b = 3.0 * d + 2.0 * m2
    u = (b + torch.sqrt(b * b - 8.0 * d * d)) / (4.0 * d)
    return ((1.0 - u) / 4.0).to(out_dtype)


def softmax_feature_logits(
    x: torch.Tensor, projection: torch.Tensor, favorpp_a: torch.Tensor | None = None
) -> torch.Tensor:
    """Exponents of the positive softmax features before stabilization.

    x: (B, H, L, d) already scaled (``scale_for_softmax``); projection W: (m, d);
    favorpp_a: None for FAVOR+ (A = 0) or (B, H) FAVOR++ parameters. Returns (B, H, L, m):
    FAVOR+:  W x - |x|^2/2;
    FAVOR++: A|w|^2 + sqrt(1-4A) w.x - |x|^2/2 + (d/4) log(1-4A).
    """
    half_sq_norm = 0.5 * (x * x).sum(-1, keepdim=True)
    projected = x @ projection.transpose(0, 1)
    if favorpp_a is None:
        return projected - half_sq_norm
    a = favorpp_a[..., None, None]
    one_minus_4a = 1.0 - 4.0 * a
    w_sq = (projection * projection).sum(-1)  # (m,)
    d = x.shape[-1]
    return a * w_sq + one_minus_4a.sqrt() * projected - half_sq_norm + 0.25 * d * one_minus_4a.log()


def positive_features(logits: torch.Tensor, stabilizer: torch.Tensor) -> torch.Tensor:
    """exp(logits - stabilizer) / sqrt(m); logits (..., L, m), stabilizer broadcastable."""
    return torch.exp(logits - stabilizer) * logits.shape[-1] ** -0.5


def query_stabilizer(logits: torch.Tensor) -> torch.Tensor:
    """Per-row max over features (..., L, 1), detached: cancels in each query's ratio."""
    return logits.detach().amax(dim=-1, keepdim=True)


def global_key_stabilizer(
    logits: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    segment_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """One constant per (batch, head): max over real keys and features -> (B, H, 1, 1).

    With ``segment_ids`` (B, L): one constant per (batch, head, segment), returned per
    position (B, H, L, 1), so no key's scale depends on another protein. For bidirectional
    attention and analysis only: in causal attention it would depend on future keys.
    Detached (it cancels in the ratio).
    """
    logits = logits.detach()
    if key_mask is not None:
        logits = logits.masked_fill(~key_mask[:, None, :, None], float("-inf"))
    if segment_ids is None:
        stab = logits.amax(dim=(-2, -1), keepdim=True)
    else:
        dense, num_segments = dense_segment_ids(segment_ids)
        per_segment = segment_max(logits.amax(dim=-1), dense, num_segments)  # (B, H, S)
        index = dense[:, None, :].expand(*logits.shape[:-1])
        stab = per_segment.gather(-1, index).unsqueeze(-1)
    return torch.where(torch.isfinite(stab), stab, torch.zeros_like(stab))


def causal_key_stabilizer(
    logits: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    segment_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Running max over positions j' <= j of the per-key feature max -> (B, H, L), detached.

    Key j is stabilized by s_j, which only depends on keys at or before j, so nothing of the
    future enters key j's features; the causal kernels multiply pairs by exp(s_j - s_i) <= 1
    to put all keys seen by query i on a common scale. Padding keys are skipped; leading
    padding takes the first real key's value (keeps s non-decreasing). With ``segment_ids``
    (B, L) the running max restarts at every segment start.
    """
    per_key = logits.detach().amax(dim=-1)
    if key_mask is not None:
        per_key = per_key.masked_fill(~key_mask[:, None, :], float("-inf"))
    if segment_ids is None:
        running = torch.cummax(per_key, dim=-1).values
    else:
        running = segmented_running_max(per_key, segment_ids)
    finite = torch.isfinite(running)
    first = running.masked_fill(~finite, float("inf")).amin(dim=-1, keepdim=True)
    first = torch.where(torch.isfinite(first), first, torch.zeros_like(first))
    return torch.where(finite, running, first)


def relu_features(
    x: torch.Tensor, projection: torch.Tensor | None, eps: float = 1e-3
) -> torch.Tensor:
    """Generalized-attention ReLU features relu(W x) + eps; x: (..., L, d) -> (..., L, m).

    ``projection=None`` gives the no-projection variant relu(x) + eps (m = d).
    """
    projected = x if projection is None else x @ projection.transpose(0, 1)
    return torch.relu(projected) + eps


KERNELS = ("softmax", "relu")


def performer_feature_maps(
    q: torch.Tensor,
    k: torch.Tensor,
    projection: torch.Tensor | None,
    kernel: str,
    key_mask: torch.Tensor | None = None,
    causal_keys: bool = False,
    relu_eps: float = 1e-3,
    favorpp: bool = False,
    segment_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Feature maps of queries and keys in float32 (float64 for float64 input).

    q, k: (B, H, L, d) raw head projections; projection: (m, d) (None: ReLU no-projection);
    kernel: ``softmax`` or ``relu``; key_mask: (B, L) bool, True = real token (padding keys
    get zero features); segment_ids: (B, L) or None (key stabilizers restart per segment).
    Returns (q', k', s): (B, H, L, m) each, and for softmax with ``causal_keys`` the
    per-position key log-scale s (B, H, L) (otherwise None: softmax keys share one
    stabilizer per (batch, head[, segment]), so q'_i.k'_j ratios are exact).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be 'softmax' or 'relu', got {kernel!r}")
    if kernel == "softmax":
        return softmax_feature_maps(q, k, projection, key_mask, causal_keys, favorpp,
                                    segment_ids)
    q_prime, k_prime = relu_feature_maps(q, k, projection, key_mask, relu_eps)
    return q_prime, k_prime, None


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def softmax_feature_maps(
    q: torch.Tensor,
    k: torch.Tensor,
    projection: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    causal_keys: bool = False,
    favorpp: bool = False,
    segment_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """FAVOR+ (or FAVOR++) softmax features (q', k', s) in float32; see performer_feature_maps."""
    work = _work_dtype(q)
    with torch.autocast(device_type=q.device.type, enabled=False):
        q, k = scale_for_softmax(q.to(work)), scale_for_softmax(k.to(work))
        proj = projection.to(work)
        if not favorpp and not proj.requires_grad:
            # FAVOR+ with the usual fixed projection: hand-written backward, fewest passes over
            # (B, H, L, m). Queries drop |q|^2/2 (one per-row constant, it cancels like the
            # stabilizer); padding keys already get zero features.
            q_prime, _ = softmax_features(q, proj, lambda row_max: (row_max, None),
                                          subtract_half_sq=False)
            k_prime, key_log_scale = softmax_features(
                k, proj, stabilizer_shift(causal_keys, key_mask, segment_ids), key_mask=key_mask)
            return q_prime, k_prime, key_log_scale
        # FAVOR++ or a trainable projection: autograd of the reference formulas
        a = favorpp_parameter(q, k, key_mask) if favorpp else None
        q_logits = softmax_feature_logits(q, proj, a)
        k_logits = softmax_feature_logits(k, proj, a)
        q_prime = positive_features(q_logits, query_stabilizer(q_logits))
        key_log_scale = None
        if causal_keys:
            key_log_scale = causal_key_stabilizer(k_logits, key_mask, segment_ids)
            k_prime = positive_features(k_logits, key_log_scale.unsqueeze(-1))
        else:
            stabilizer = global_key_stabilizer(k_logits, key_mask, segment_ids)
            k_prime = positive_features(k_logits, stabilizer)
        return q_prime, _masked_keys(k_prime, key_mask), key_log_scale


def relu_feature_maps(
    q: torch.Tensor,
    k: torch.Tensor,
    projection: torch.Tensor | None,
    key_mask: torch.Tensor | None = None,
    relu_eps: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized-attention ReLU features (q', k') in float32; see performer_feature_maps."""
    work = _work_dtype(q)
    with torch.autocast(device_type=q.device.type, enabled=False):
        q, k = scale_for_softmax(q.to(work)), scale_for_softmax(k.to(work))
        proj = None if projection is None else projection.to(work)
        if proj is not None and not proj.requires_grad:  # hand-written backward, masks keys
            q_prime = relu_features_fused(q, proj, relu_eps)
            return q_prime, relu_features_fused(k, proj, relu_eps, key_mask)
        q_prime, k_prime = relu_features(q, proj, relu_eps), relu_features(k, proj, relu_eps)
        return q_prime, _masked_keys(k_prime, key_mask)


def stabilizer_shift(causal: bool, key_mask: torch.Tensor | None = None,
                     segment_ids: torch.Tensor | None = None):
    """The key stabilizer as a function of the per-key exponent maxima (B, H, L, 1):
    (shift, None) with ``global_key_stabilizer`` (bidirectional), or (s[..., None], s) with
    the causal running max s (B, H, L) (``causal_key_stabilizer``)."""

    def shift_of(row_max: torch.Tensor):
        if not causal:
            return global_key_stabilizer(row_max, key_mask, segment_ids), None
        log_scale = causal_key_stabilizer(row_max, key_mask, segment_ids)
        return log_scale.unsqueeze(-1), log_scale

    return shift_of


def _masked_keys(k_prime: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    """Zero features for padding keys (key_mask False)."""
    if key_mask is None:
        return k_prime
    return k_prime * key_mask[:, None, :, None].to(k_prime.dtype)
