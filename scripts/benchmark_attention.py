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
    python scripts/benchmark_attention.py --lengths 512 1024 --skip-approx --out-dir /tmp/b

``--compare-causal-kernels`` instead times the two torch causal kernels side by side in one
process (the in-place loop kernel used on CPU, the loop-free scan used on GPUs and in bf16)
on the layer's shapes, fwd+bwd, median of ``--min-repeats`` runs, and prints their ratio;
``--precision --approx-length 4096`` prints the fp32 and bf16-autocast errors vs float64.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from benchmark_log import BENCHMARK_DIR, append_rows, provenance, write_report

from protperf.attention import AttentionConfig, MultiHeadAttention
from protperf.attention.ops.causal_loop import causal_linear_attention_unnormalized
from protperf.attention.ops.causal_scan import causal_scan_attention_unnormalized

DIM, HEADS, FEATURES = 512, 8, 256
# name -> (attention kind or "performer_pytorch", causal, time exponent in L)
METHODS = {
    "exact": ("exact", 2),
    "favor_softmax": ("favor_softmax", 1),
    "favor_relu": ("favor_relu", 1),
    "identity": ("identity", 1),
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


def build_layer(method: str, causal: bool, chunk_size: int | None = None) -> torch.nn.Module:
    if method == "performer_pytorch":
        return PerformerPytorchLayer(causal)
    cfg = AttentionConfig(kind=METHODS[method][0], num_features=FEATURES, chunk_size=chunk_size)
    return MultiHeadAttention(DIM, HEADS, cfg, causal)


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def worker(method: str, causal: bool, length: int, min_repeats: int = 0,
           chunk_size: int | None = None) -> dict:
    """Runs in a fresh process: first fwd+bwd (warm-up, peak memory), then timed repeats."""
    torch.manual_seed(0)
    layer = build_layer(method, causal, chunk_size)
    x = torch.randn(1, length, DIM, requires_grad=True)
    baseline = max_rss_mib()

    def step() -> float:
        start = time.perf_counter()
        layer(x).sum().backward()
        x.grad = None
        layer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    first = step()
    peak = max_rss_mib() - baseline
    repeats = max(min_repeats, 3 if first < 1.0 else (1 if first < 5.0 else 0))
    times = [step() for _ in range(repeats)] or [first]
    times.sort()
    return {"time_s": times[len(times) // 2], "peak_mib": peak, "repeats": len(times)}


def run_worker(
    method: str, causal: bool, length: int, timeout: float, min_repeats: int = 0,
    chunk_size: int | None = None,
) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--causal", str(int(causal)),
           "--length", str(length), "--min-repeats", str(min_repeats)]
    if chunk_size is not None:
        cmd += ["--chunk-size", str(chunk_size)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
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


def timing_table(
    lengths: list[int], budget_s: float, budget_mib: float, only: list[str] | None = None,
    min_repeats: int = 0, chunk_size: int | None = None,
) -> list[dict]:
    methods = [m for m in METHODS if m != "performer_pytorch" or performer_pytorch_available()]
    methods = [m for m in methods if only is None or m in only]
    rows = []
    for method in methods:
        modes = [False] if method == "identity" else [False, True]
        exponent = METHODS[method][1]
        for causal in modes:
            last = None
            for length in lengths:
                row = {"method": method, "mode": "causal" if causal else "bidirectional",
                       "length": length}
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
                                    min_repeats=min_repeats, chunk_size=chunk_size)
                row.update(result)
                rows.append(row)
                print(row, flush=True)
                if result["status"] == "ok":
                    last = row
                else:
                    last = {"length": length, "time_s": math.inf, "peak_mib": math.inf}
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


def compare_causal_kernels(lengths: list[int], repeats: int, chunk_size: int) -> list[dict]:
    """Loop vs scan causal kernel, fwd+bwd on (1, 8, L, 256) features, in this process."""
    kernels = {
        "loop": lambda q, k, v, s: causal_linear_attention_unnormalized(q, k, v, s, chunk_size),
        "scan": lambda q, k, v, s: causal_scan_attention_unnormalized(q, k, v, s, chunk_size),
    }
    rows = []
    for length in lengths:
        gen = torch.Generator().manual_seed(0)
        q, k = (torch.rand(1, HEADS, length, FEATURES, generator=gen) / FEATURES**0.5
                for _ in range(2))
        v = torch.randn(1, HEADS, length, DIM // HEADS + 1, generator=gen)
        s = torch.cummax(torch.randn(1, HEADS, length, generator=gen), dim=-1).values
        for kernel_kind, log_scale in (("softmax", s), ("relu", None)):
            times = {name: [] for name in kernels}
            for _ in range(repeats):  # interleaved, so load changes hit both alike
                for name, kernel in kernels.items():
                    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
                    start = time.perf_counter()
                    kernel(*leaves, log_scale).sum().backward()
                    times[name].append(time.perf_counter() - start)
            medians = {name: sorted(t)[len(t) // 2] for name, t in times.items()}
            row = {"length": length, "kernel": kernel_kind, "repeats": repeats,
                   **{f"{name}_s": round(t, 4) for name, t in medians.items()},
                   "scan_over_loop": round(medians["scan"] / medians["loop"], 3)}
            rows.append(row)
            print(row, flush=True)
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
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="causal Performer chunk size (default: the config's)")
    parser.add_argument("--compare-causal-kernels", action="store_true",
                        help="time the loop and scan causal kernels side by side and exit")
    parser.add_argument("--precision", action="store_true",
                        help="print the fp32 / bf16-autocast error vs float64 at --approx-length")
    parser.add_argument("--skip-approx", action="store_true")
    parser.add_argument("--approx-length", type=int, default=1024)
    parser.add_argument("--approx-seeds", type=int, default=3)
    parser.add_argument("--out-dir", type=Path, default=BENCHMARK_DIR,
                        help="where the CSVs and README are (default: benchmarks/)")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, bool(args.causal), args.length, args.min_repeats,
                                args.chunk_size)))
        return
    if args.precision:
        precision_table(args.approx_length)
        return
    if args.compare_causal_kernels:
        lengths = args.lengths if args.lengths != parser.get_default("lengths") else [4096, 8192]
        compare_causal_kernels(lengths, max(3, args.min_repeats), args.chunk_size or 64)
        return
    run = provenance(sys.argv[1:])
    print("protperf attention benchmark:", run, flush=True)
    rows = timing_table(args.lengths, args.budget_s, args.budget_gib * 1024, args.methods,
                        args.min_repeats, args.chunk_size)
    approx = [] if args.skip_approx else approximation_table(args.approx_length, args.approx_seeds)
    write_outputs(rows, approx, args.out_dir, run)
    print(f"appended to {args.out_dir}/attention.csv; wrote {args.out_dir}/README.md", flush=True)


if __name__ == "__main__":
    main()
