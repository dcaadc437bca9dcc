"""Matrix-product counts and rates: the floors of the attention and training benchmarks.

A floor is a time no implementation made of the same matrix products can run under on a
machine: the products' FLOPs at the best GEMM rate the machine showed, elementwise work not
counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def _add_product_flop(self_shape, a_shape, b_shape, out_shape=None, **_) -> int:
    """FLOPs of the in-place ``baddbmm_`` (torch's counter only knows ``baddbmm``)."""
    return 2 * a_shape[0] * a_shape[1] * a_shape[2] * b_shape[2]


def matmul_gflop(fn: Callable[[], object]) -> float:
    """GFLOP of the matrix products (mm, bmm, addmm, baddbmm, in-place baddbmm_, ...) one call
    of ``fn`` runs, backward included when ``fn`` calls it; torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False,
                              custom_mapping={torch.ops.aten.baddbmm_: _add_product_flop})
    with counter:
        fn()
    return counter.get_total_flops() / 1e9


def best_gemm_gflops(shapes: list[tuple[int, int, int, int]], repeats: int = 3) -> float:
    """The best rate (GFLOP/s of CPU time) of this process over products (rows, inner) x
    (inner, cols), each run ``times`` times in a row into a preallocated output; per shape the
    median of ``repeats``. shapes: (rows, inner, cols, times)."""
    best = 0.0
    for rows, inner, cols, times in shapes:
        a, b = torch.randn(rows, inner), torch.randn(inner, cols)
        out = torch.empty(rows, cols)
        torch.mm(a, b, out=out)
        spent = []
        for _ in range(repeats):
            start = time.process_time()
            for _ in range(times):
                torch.mm(a, b, out=out)
            spent.append(time.process_time() - start)
        best = max(best, 2 * rows * inner * cols * times / sorted(spent)[repeats // 2] / 1e9)
    return best


def layer_gemm_gflops(length: int, dim: int, heads: int, num_features: int) -> float:
    """``best_gemm_gflops`` on an attention layer's two kinds of product: the (L, D) x (D, D)
    projection and the (rows, d) x (d, m) feature projection (1024 positions of all heads at
    a time, as many times as cover L)."""
    head_dim = dim // heads
    return best_gemm_gflops([(length, dim, dim, 1),
                             (1024 * heads, head_dim, num_features, max(1, length // 1024))])
