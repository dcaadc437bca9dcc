"""Benchmark attention: forward+backward time and peak memory against sequence length.

One run measures every method side by side (each configuration in a fresh subprocess, so
that peak RSS is its own): exact softmax attention (torch SDPA), FAVOR+ softmax and ReLU
(bidirectional and causal), the identity floor (projections only, v passed through) and,
if installed, performer-pytorch 1.1.4's ``FastAttention`` wrapped in the same projections.
All methods run the full multi-head layer (q/k/v/out projections, batch 1, 8 heads, head dim
64, m = 256, float32) on x: (1, L, 512). Configurations predicted to exceed the time or
memory budget (from the previous length, with the method's complexity) are "skipped".
It also measures the approximation error vs exact attention per feature type.
Rows are appended, with provenance, to benchmarks/attention.csv and
benchmarks/attention_approx_error.csv, and benchmarks/README.md is regenerated.

    python scripts/benchmark_attention.py
    python scripts/benchmark_attention.py --lengths 512 1024 --skip-approx --smoke

``--threads N`` sets torch's threads in every worker (default 1). ``--old-commit REV`` also
runs the Performer methods with the ``protperf`` package of that git revision (extracted with
``git archive`` to a temporary folder and put first on the worker's ``PYTHONPATH``), so old
and new implementations are measured side by side in one run (``implementation`` column).
Each row also records ``x_identity`` (CPU time over the no-attention layer's at the same
length), ``x_exact`` (exact attention's CPU time over the row's, same direction) and
``mem_x_exact`` (peak over exact attention's peak, same direction); CPU time, not wall time,
because a shared machine's load moves wall time far more.

The ``projections`` method is the layer with all four projections trained and no attention
(v passed through, zero gradients to q and k); ``identity`` skips the q and k projections'
backward, since nothing reads q and k. Performer rows get ``x_projections`` (CPU time over
that layer's) and a floor: ``floor_s`` = the projections layer's CPU time + the attention's
matrix-product GFLOP (``favor_gflop``) at the best product rate any process of the run
measured at that length (``gemm_gflops``, each process's own), elementwise work not counted,
so no kernel built from these products on that machine gets under it; ``floor_x_identity``
is the floor over the identity layer and ``floor_x_exact`` exact attention's time over the
floor (the largest possible ``x_exact``).

``--chunk-size C [C ...]`` sweeps the causal Performer's chunk size: its causal rows run once
per C (``chunk_size`` column, the size in effect), the other rows once.
``--precision --approx-length 4096`` prints the fp32 and bf16-autocast errors vs float64.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from benchmark_flops import layer_gemm_gflops
from benchmark_log import add_output_options, append_rows, old_tree, provenance, write_report

from protperf.attention import AttentionConfig, MultiHeadAttention

DIM, HEADS, FEATURES = 512, 8, 256
# name -> (attention kind or "performer_pytorch", causal, time exponent in L)
METHODS = {
    "exact": ("exact", 2),
    "favor_softmax": ("favor_softmax", 1),
    "favor_relu": ("favor_relu", 1),
    "identity": ("identity", 1),
    "projections": ("projections", 1),
    "performer_pytorch": ("performer_pytorch", 1),
}


class PerformerPytorchLayer(torch.nn.Module):
    """performer-pytorch's FastAttention between the same q/k/v/out projections."""

    def __init__(self, causal: bool) -> None:
        super().__init__()
        from performer_pytorch import FastAttention

        self.inner = MultiHeadAttention(DIM, HEADS, AttentionConfig(kind="identity"), causal)
        self.fast = FastAttention(dim_heads=DIM // HEADS, nb_features=FEATURES, causal=causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.inner.project(x)
        out = self.fast(q, k, v).transpose(1, 2).reshape(x.shape)
        return self.inner.out_proj(out)


class _PassThrough(torch.autograd.Function):
    """v as the attention output; q and k get zero gradients, so that their projections'
    backward runs as under real attention (under ``identity`` q and k get no gradient)."""

    @staticmethod
    def forward(ctx, q, k, v):
        return v.view_as(v)

    @staticmethod
    def backward(ctx, grad):
        zeros = torch.zeros_like(grad)
        return zeros, zeros, grad


class ProjectionsLayer(torch.nn.Module):
    """All four projections, each with its backward, around no attention: what a Performer
    layer adds its attention to (the ``projections`` method)."""

    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.inner = MultiHeadAttention(DIM, HEADS, AttentionConfig(kind="identity"), causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.inner.project(x)
        out = _PassThrough.apply(q, k, v).transpose(1, 2).reshape(x.shape)
        return self.inner.out_proj(out)


def favor_gflop(length: int, causal: bool, chunk: int) -> float:
    """Matrix-product GFLOP of one FAVOR+ forward + backward of the benchmark's heads, as
    the recomputing CPU kernels form them (features recomputed in backward; elementwise work
    not counted; the value products' extra column of ones neither). Unit: one L x m x d
    product over all heads, 2 L H m d FLOP. Bidirectional: 4 forward (two feature
    projections, K'^T V, Q' S) + 8 backward. Causal with chunk C: 13 + 4 C / d + 3 C / m
    (the C x C products inside chunks, and the forward states the backward rebuilds)."""
    d, m = DIM // HEADS, FEATURES
    units = 13 + 4 * chunk / d + 3 * chunk / m if causal else 12
    return units * 2 * length * HEADS * m * d / 1e9


def build_layer(method: str, causal: bool, chunk_size: int | None = None) -> torch.nn.Module:
    if method == "performer_pytorch":
        return PerformerPytorchLayer(causal)
    if method == "projections":
        return ProjectionsLayer(causal)
    cfg = AttentionConfig(kind=METHODS[method][0], num_features=FEATURES, chunk_size=chunk_size)
    return MultiHeadAttention(DIM, HEADS, cfg, causal)


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def worker(method: str, causal: bool, length: int, min_repeats: int = 0,
           chunk_size: int | None = None, threads: int = 1) -> dict:
    """Runs in a fresh process: first fwd+bwd (warm-up, peak memory), then timed repeats."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layer = build_layer(method, causal, chunk_size)
    x = torch.randn(1, length, DIM, requires_grad=True)
    baseline = max_rss_mib()

    def step() -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        layer(x).sum().backward()
        x.grad = None
        layer.zero_grad(set_to_none=True)
        return time.perf_counter() - start, time.process_time() - cpu

    first = step()
    peak = max_rss_mib() - baseline
    repeats = max(min_repeats, 3 if first[0] < 1.0 else (1 if first[0] < 5.0 else 0))
    times = [step() for _ in range(repeats)] or [first]
    wall, cpu = (sorted(t[i] for t in times)[len(times) // 2] for i in (0, 1))
    return {"time_s": wall, "cpu_s": cpu, "peak_mib": peak, "repeats": len(times),
            "gemm_gflops": layer_gemm_gflops(length, DIM, HEADS, FEATURES)}


def run_worker(
    method: str, causal: bool, length: int, timeout: float, min_repeats: int = 0,
    chunk_size: int | None = None, threads: int = 1, tree: Path | None = None,
) -> dict:
    """One configuration in a fresh process; ``tree``: a folder whose ``protperf`` package
    the worker imports instead of this checkout's."""
    cmd = [sys.executable, __file__, "--worker", method, "--causal", str(int(causal)),
           "--length", str(length), "--min-repeats", str(min_repeats),
           "--threads", str(threads)]
    if chunk_size is not None:
        cmd += ["--chunk-size", str(chunk_size)]
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                              env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout>{timeout:.0f}s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
        return {"status": f"failed: {tail}"}
    return {"status": "ok", **json.loads(proc.stdout.strip().splitlines()[-1])}


def performer_pytorch_available() -> bool:
    try:
        import performer_pytorch  # noqa: F401
    except ImportError:
        return False
    return True


def series(method: str, chunk_sizes: list[int | None]) -> list[tuple[bool, int | None]]:
    """(causal, chunk size) of every series of ``method``: the causal Performer once per
    chunk size (None: the config's), everything else once."""
    if method in ("identity", "projections"):
        return [(False, None)]
    if not method.startswith("favor"):
        return [(False, None), (True, None)]
    return [(False, None)] + [(True, chunk) for chunk in chunk_sizes]


def timing_table(
    lengths: list[int], budget_s: float, budget_mib: float, only: list[str] | None = None,
    min_repeats: int = 0, chunk_sizes: list[int | None] | None = None, threads: int = 1,
    old: tuple[str, Path] | None = None,
) -> list[dict]:
    methods = [m for m in METHODS if m != "performer_pytorch" or performer_pytorch_available()]
    methods = [m for m in methods if only is None or m in only]
    runs = [(m, "new", None) for m in methods]
    if old is not None:  # the Performers of the old revision, after the new ones
        runs += [(m, old[0], old[1]) for m in methods if m.startswith("favor")]
    rows = []
    for method, implementation, tree in runs:
        exponent = METHODS[method][1]
        for causal, chunk_size in series(method, chunk_sizes or [None]):
            last = None
            for length in lengths:
                row = {"method": method, "mode": "causal" if causal else "bidirectional",
                       "chunk_size": "", "length": length, "implementation": implementation}
                if causal and method.startswith("favor"):
                    row["chunk_size"] = AttentionConfig(chunk_size=chunk_size).causal_chunk_size(
                        DIM // HEADS)
                if last is not None:
                    ratio = length / last["length"]
                    predicted_t = last["time_s"] * ratio**exponent
                    # one warm-up + repeats, as in worker()
                    runs = 4 if predicted_t < 1.0 else (2 if predicted_t < 5.0 else 1)
                    predicted_mib = last["peak_mib"] * ratio ** (2 if method == "exact" else 1)
                    if predicted_t * runs > budget_s or predicted_mib > budget_mib:
                        row.update(status="skipped", time_s=math.nan, peak_mib=math.nan,
                                   note=f"predicted {predicted_t:.0f}s, {predicted_mib:.0f}MiB")
                        rows.append(row)
                        print(row, flush=True)
                        continue
                result = run_worker(method, causal, length, timeout=3 * budget_s,
                                    min_repeats=min_repeats, chunk_size=chunk_size,
                                    threads=threads, tree=tree)
                row.update(result)
                rows.append(row)
                print(row, flush=True)
                if result["status"] == "ok":
                    last = row
                else:
                    last = {"length": length, "time_s": math.inf, "peak_mib": math.inf}
    return with_ratios(rows)


def with_ratios(rows: list[dict]) -> list[dict]:
    """Add x_identity, x_projections, x_exact, mem_x_exact and the Performers' floor_s,
    floor_x_identity, floor_x_exact (see the module docstring) where measured."""
    def measured(method: str, length: int, mode: str | None = None) -> dict | None:
        for row in rows:
            if (row["method"] == method and row["length"] == length and row["status"] == "ok"
                    and row["implementation"] == "new" and mode in (None, row["mode"])):
                return row
        return None

    for row in rows:
        if row["status"] != "ok":
            continue
        identity = measured("identity", row["length"])
        projections = measured("projections", row["length"])
        exact = measured("exact", row["length"], row["mode"])
        if identity is not None:
            row["x_identity"] = row["cpu_s"] / identity["cpu_s"]
        if projections is not None:
            row["x_projections"] = row["cpu_s"] / projections["cpu_s"]
        if exact is not None:
            row["x_exact"] = exact["cpu_s"] / row["cpu_s"]
            row["mem_x_exact"] = row["peak_mib"] / exact["peak_mib"]
        if projections is not None and row["method"].startswith("favor"):
            gflop = favor_gflop(row["length"], row["mode"] == "causal", row["chunk_size"] or 0)
            rate = max(other.get("gemm_gflops") or 0.0 for other in rows
                       if other["status"] == "ok" and other["length"] == row["length"])
            row["floor_s"] = projections["cpu_s"] + gflop / rate
            if identity is not None:
                row["floor_x_identity"] = row["floor_s"] / identity["cpu_s"]
            if exact is not None:
                row["floor_x_exact"] = exact["cpu_s"] / row["floor_s"]
    return rows


def approximation_table(length: int, seeds: int) -> list[dict]:
    """Relative error of bidirectional Performer-softmax outputs vs exact, per feature type."""
    rows = []
    torch.manual_seed(0)
    exact = MultiHeadAttention(DIM, HEADS, AttentionConfig(kind="exact"), causal=False)
    x = torch.randn(2, length, DIM)
    with torch.no_grad():
        q, k, v = exact.project(x)
        reference = exact.attend(q, k, v)
    for feature_type in ("iid", "orthogonal", "simplex", "favorpp"):
        for m in (16, 64, 256):
            errors = []
            for seed in range(seeds):
                torch.manual_seed(seed)
                cfg = AttentionConfig(kind="favor_softmax", num_features=m,
                                      feature_type=feature_type)
                layer = MultiHeadAttention(DIM, HEADS, cfg, causal=False)
                with torch.no_grad():
                    out = layer.attend(q, k, v)
                errors.append(((out - reference).norm() / reference.norm()).item())
            mean = sum(errors) / len(errors)
            rows.append({"feature_type": feature_type, "num_features": m,
                         "rel_error_mean": mean, "seeds": seeds, "length": length})
            print(rows[-1], flush=True)
    return rows


def precision_table(length: int) -> list[dict]:
    """Relative error of fp32 and bf16-autocast attention against float64, same weights.

    The layer's attention (8 heads, head dim 64, m = 256) of one (1, L, 512) input, against
    the same layer run in float64 (exact: float64 SDPA).
    """
    rows = []
    for kind in ("exact", "favor_softmax", "favor_relu"):
        for causal in (False, True):
            torch.manual_seed(0)
            layer = MultiHeadAttention(DIM, HEADS, AttentionConfig(kind=kind,
                                                                   num_features=FEATURES),
                                       causal).eval()
            x = torch.randn(1, length, DIM, generator=torch.Generator().manual_seed(1))
            with torch.no_grad():
                q, k, v = layer.project(x)
                reference = layer.double().attend(q.double(), k.double(), v.double())
                layer.float()
                errors = {}
                for name, dtype in (("float32", None), ("bf16_autocast", torch.bfloat16)):
                    with torch.autocast("cpu", dtype=dtype or torch.float32,
                                        enabled=dtype is not None):
                        out = layer.attend(q, k, v)
                    error = (out.double() - reference).norm() / reference.norm()
                    errors[name] = float(error)
                    assert torch.isfinite(out).all()
            rows.append({"method": kind, "mode": "causal" if causal else "bidirectional",
                         "length": length, **errors})
            print(rows[-1], flush=True)
    return rows


def write_outputs(rows: list[dict], approx: list[dict], out_dir: Path, run: dict) -> None:
    """Append the rows to attention.csv / attention_approx_error.csv, regenerate the README,
    and plot time and memory against L (attention.png) when the run covers several lengths."""
    df = pd.DataFrame(rows)
    append_rows("attention", df, run, out_dir)
    if approx:
        append_rows("attention_approx_error", pd.DataFrame(approx), run, out_dir)
    ok = df[df["status"] == "ok"]
    if ok["length"].nunique() > 1:
        plot(ok, out_dir / "attention.png", f"protperf attention benchmark ({run['machine']}, "
             f"torch {run['torch']}, {run['threads']} threads, commit {run['commit']})")
    write_report(out_dir)


def plot(ok, path: Path, title: str) -> None:
    """Seaborn log-log plots of time and peak memory against L, one line per method/mode."""
    import matplotlib

    matplotlib.use("Agg")  # a script, not an importable module: choosing the backend is ours
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, column, label in ((axes[0], "time_s", "forward+backward time (s)"),
                              (axes[1], "peak_mib", "peak memory above baseline (MiB)")):
        sns.lineplot(data=ok, x="length", y=column, hue="method", style="mode", markers=True,
                     ax=ax)
        ax.set(xscale="log", yscale="log", xlabel="sequence length L", ylabel=label)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--causal", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--lengths", type=int, nargs="+",
                        default=[512, 1024, 2048, 4096, 8192, 16384, 32768, 65536])
    parser.add_argument("--budget-s", type=float, default=150.0,
                        help="skip a configuration predicted to take longer (all its runs)")
    parser.add_argument("--budget-gib", type=float, default=12.0,
                        help="skip a configuration predicted to need more peak memory")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=None,
                        help="only these methods (default: all)")
    parser.add_argument("--min-repeats", type=int, default=0,
                        help="timed repeats after the warm-up at least (median reported)")
    parser.add_argument("--chunk-size", type=int, nargs="+", default=None,
                        help="causal Performer chunk size (default: the config's); several: "
                             "a sweep, the causal Performer rows once per size")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of every measured process (default 1)")
    parser.add_argument("--old-commit", default=None, metavar="REV",
                        help="also run the Performers with the protperf package of this git "
                             "revision (e.g. main), side by side")
    parser.add_argument("--precision", action="store_true",
                        help="print the fp32 / bf16-autocast error vs float64 at --approx-length")
    parser.add_argument("--skip-approx", action="store_true")
    parser.add_argument("--approx-length", type=int, default=1024)
    parser.add_argument("--approx-seeds", type=int, default=3)
    add_output_options(parser, "attention.csv, attention_approx_error.csv, attention.png")
    args = parser.parse_args()
    if args.worker:
        chunk_size = args.chunk_size[0] if args.chunk_size else None
        print(json.dumps(worker(args.worker, bool(args.causal), args.length, args.min_repeats,
                                chunk_size, args.threads)))
        return
    if args.precision:
        precision_table(args.approx_length)
        return
    run = provenance(sys.argv[1:], threads=args.threads)
    print("protperf attention benchmark:", run, flush=True)
    with tempfile.TemporaryDirectory(prefix="protperf-old-") as tmp:
        old = old_tree(args.old_commit, Path(tmp)) if args.old_commit else None
        rows = timing_table(args.lengths, args.budget_s, args.budget_gib * 1024, args.methods,
                            args.min_repeats, args.chunk_size, args.threads, old)
    approx = [] if args.skip_approx else approximation_table(args.approx_length, args.approx_seeds)
    write_outputs(rows, approx, args.out_dir, run)
    print(f"appended to {args.out_dir}/attention.csv; wrote {args.out_dir}/README.md", flush=True)


if __name__ == "__main__":
    main()
