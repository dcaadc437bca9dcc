"""Training benchmark: throughput / memory per model and window, and equal-step quality.

1. Throughput: tokens/s of full training steps (forward, backward, AdamW) and the peak memory
   the steps add on top of model + optimizer (CPU: peak RSS; GPU: max allocated) for
   the same small architecture with exact, FAVOR+ softmax, FAVOR+ ReLU and identity attention
   at windows 1024, 4096, 8192 (batch 1), bidirectional and causal, each in a fresh process,
   all in one run; ratios to exact attention and to identity (no attention), computed from
   tokens per CPU-second on CPU (robust to other users of a shared machine), wall time on GPU;
   ``--repeats N`` reports the median of N rounds of fresh processes; ``--interleaved`` runs
   all models of a cell in one process, a step of each in turn (speed only, steadier ratios).
   The architecture is ARCH (D 256, 8 heads, 2 layers, ff 1024; the paper's proportions)
   unless ``--dim --num-heads --num-layers --ffn-dim`` say otherwise (the tables name it in
   their ``arch`` column).
2. Quality: every model x direction trained for the same number of steps on the bundled sample
   through the real Hydra config, val perplexity next to the unigram (amino-acid frequency)
   perplexity and the ratio to the exact Transformer.

    python scripts/benchmark_training.py
    python scripts/benchmark_training.py --windows 1024 --quality-steps 50 --smoke
    python scripts/benchmark_training.py --skip quality --windows 8192 --interleaved \
        --dim 128 --num-heads 4 --ffn-dim 512
    python scripts/benchmark_training.py --skip quality --windows 8192 --threads 1 \
        --old-commit main      # the Performers of main too, side by side (fresh processes)

Appends its rows, with provenance (commit, date, machine, threads, arguments), to
benchmarks/training_throughput.csv and benchmarks/training_quality.csv, and regenerates
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from benchmark_flops import layer_gemm_gflops, matmul_gflop
from benchmark_log import add_output_options, import_from, log_run, old_tree, provenance

from protperf.conf import CONF_DIR

KINDS = {"identity": "identity", "transformer": "exact", "performer_softmax": "favor_softmax",
         "performer_relu": "favor_relu"}
# A small model with the proportions of the paper's protein Performers ((heads, d_ff, d) =
# (8, 2048, 512), m = 256 for head dim 64): 8 heads, d_ff = 4 d, m = 4 x head dim (with
# --num-features 128). What a Performer adds over no attention, relative to the rest of a
# layer, depends on those proportions and falls with the head count (README, Models and
# training); --dim 128 --num-heads 4 --ffn-dim 512 is the 4-head variant.
ARCH = {"dim": 256, "num_heads": 8, "num_layers": 2, "ffn_dim": 1024, "dropout": 0.0,
        "max_position": 8192}


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def architecture(arch: dict | None, window: int) -> dict:
    """ARCH with the given overrides; the positional table covers the window."""
    full = {**ARCH, **(arch or {})}
    full["max_position"] = max(full["max_position"], window)
    return full


def arch_label(arch: dict, num_features: int) -> str:
    """'D=128 H=4 layers=2 ff=512 m=128' from ``arch_overrides``: the tables' arch column."""
    return (f"D={arch['dim']} H={arch['num_heads']} layers={arch['num_layers']} "
            f"ff={arch['ffn_dim']} m={num_features}")


def build_module(model: str, objective: str, window: int, num_features: int,
                 chunk_size: int | None = None, arch: dict | None = None):
    """The ProteinLMModule of one benchmark model (seed 0); arch: overrides of ARCH."""
    from protperf.model.lightning import ProteinLMModule

    torch.manual_seed(0)
    return ProteinLMModule(
        model={**architecture(arch, window), "name": model,
               "attention": {"kind": KINDS[model], "num_features": num_features,
                             "redraw_interval": 0,
                             **({"chunk_size": chunk_size} if chunk_size else {})}},
        task={"objective": objective},
    )


def training_step(model: str, objective: str, window: int, device: str, num_features: int,
                  chunk_size: int | None = None, arch: dict | None = None):
    """A closure running one full training step (forward, backward, AdamW) of one model."""
    from protperf.model.loss import token_loss_and_accuracy

    module = build_module(model, objective, window, num_features, chunk_size, arch).to(device)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    ids = torch.randint(5, 25, (1, window), device=device)
    labels = ids.clone() if objective == "mlm" else torch.roll(ids, -1, dims=1)
    mask = torch.ones_like(ids, dtype=torch.bool)

    def step() -> None:
        loss, _, _ = token_loss_and_accuracy(module(ids, mask), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return step


def throughput_worker(model: str, objective: str, window: int, warmup: int, steps: int,
                      device: str, num_features: int, threads: int,
                      chunk_size: int | None = None, arch: dict | None = None,
                      tree: Path | None = None) -> dict:
    """One configuration in a fresh process: tokens/s and peak memory of training steps;
    ``tree``: a folder whose ``protperf`` it imports (None: this checkout's)."""
    import_from(tree)
    torch.set_num_threads(threads)
    step = training_step(model, objective, window, device, num_features, chunk_size, arch)
    before = rss_mib()  # model, optimizer and inputs exist; no step taken yet
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    for _ in range(warmup):
        step()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:  # peak resident set of this fresh process (Linux ru_maxrss is in KiB)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # memory the training steps added on top of model + optimizer + inputs
    return {"model": model, "attention": KINDS[model], "objective": objective,
            "window": window, "tokens_per_s": steps * window / seconds,
            "tokens_per_cpu_s": steps * window / cpu_seconds,
            "step_s": seconds / steps, "step_mem_mib": peak - before,
            **({} if device == "cuda" else product_figures(step, window, num_features, arch))}


def product_figures(step, window: int, num_features: int, arch: dict | None) -> dict:
    """A step's matrix-product GFLOP (one more step, counted) and the best GEMM rate of this
    process on the model's projection and feature-projection shapes: the inputs of the
    ``max_x_identity`` ceiling (``with_ceiling``)."""
    shape = architecture(arch, window)
    rate = layer_gemm_gflops(window, shape["dim"], shape["num_heads"], num_features)
    return {"gflop_per_step": matmul_gflop(step), "gemm_gflops": rate}


def with_ceiling(table: pd.DataFrame) -> pd.DataFrame:
    """``max_x_identity``: the largest ``x_identity`` (tokens per CPU-second over the
    no-attention model's) a model's step can reach on this machine: the no-attention step's
    CPU time plus the model's extra matrix products at the best GEMM rate of the cell, with
    its extra elementwise work counted as free."""
    table = table.copy()
    table["max_x_identity"] = float("nan")
    if "gflop_per_step" not in table:
        return table
    for _, cell in table.groupby(["objective", "window"]):
        identity = cell[(cell.model == "identity") & (cell.implementation == "new")]
        if identity.empty or identity.gflop_per_step.isna().all():
            continue
        reference = identity.iloc[0]
        rate = cell.gemm_gflops.max()
        base_s = reference.window / reference.tokens_per_cpu_s
        for index, row in cell.iterrows():
            floor_s = base_s + (row.gflop_per_step - reference.gflop_per_step) / rate
            table.loc[index, "max_x_identity"] = base_s / floor_s
    return table


def interleaved_worker(models: list[str], objective: str, window: int, warmup: int,
                       steps: int, device: str, num_features: int, threads: int,
                       chunk_size: int | None = None, arch: dict | None = None) -> list[dict]:
    """All models in one process, one step of each in turn: medians of per-step times.

    Drift of a shared machine (other jobs, clock changes) then hits every model alike, so the
    ratios are steadier than across processes; no per-model memory (one process holds all).
    """
    torch.set_num_threads(threads)
    step_of = {model: training_step(model, objective, window, device, num_features, chunk_size,
                                    arch)
               for model in models}
    for _ in range(warmup):
        for step in step_of.values():
            step()
    wall = {model: [] for model in models}
    cpu = {model: [] for model in models}
    for _ in range(steps):
        for model, step in step_of.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            step()
            wall[model].append(time.perf_counter() - start)
            cpu[model].append(time.process_time() - cpu_start)
    return [{"model": model, "attention": KINDS[model], "objective": objective,
             "window": window, "tokens_per_s": window / statistics.median(wall[model]),
             "tokens_per_cpu_s": window / statistics.median(cpu[model]),
             "step_s": statistics.median(wall[model]), "step_mem_mib": float("nan")}
            for model in models]


def arch_overrides(args: argparse.Namespace) -> dict:
    """The architecture options of the command line, as ARCH overrides."""
    return {"dim": args.dim, "num_heads": args.num_heads, "num_layers": args.num_layers,
            "ffn_dim": args.ffn_dim}


def run_throughput(args: argparse.Namespace, old: tuple[str, Path] | None = None) -> pd.DataFrame:
    """``old``: (label, folder of an old ``protperf``) whose Performers also run (not with
    --interleaved), rows labelled in the ``implementation`` column."""
    rows, arch = [], arch_overrides(args)
    context = mp.get_context("spawn")
    runs = [(model, "new", None) for model in args.models]
    if old is not None and not args.interleaved:
        runs += [(model, *old) for model in args.models if model.startswith("performer")]
    if args.interleaved:
        for window in args.windows:
            for objective in args.objectives:
                with context.Pool(1) as pool:
                    cells = pool.apply(interleaved_worker, (
                        args.models, objective, window, args.warmup, args.steps, args.device,
                        args.num_features, args.threads, args.chunk_size, arch))
                for row in cells:
                    print(f"  {row['model']:18s} {objective} L={window:5d}: "
                          f"{row['tokens_per_s']:9.0f} tok/s "
                          f"({row['tokens_per_cpu_s']:7.0f} per CPU-s), interleaved", flush=True)
                rows.extend(cells)
    # whole rounds, so drift of the machine hits every cell alike
    for repeat in range(0 if args.interleaved else args.repeats):
        for window in args.windows:
            for objective in args.objectives:
                for model, implementation, tree in runs:
                    with context.Pool(1) as pool:
                        row = pool.apply(throughput_worker, (
                            model, objective, window, args.warmup, args.steps, args.device,
                            args.num_features, args.threads, args.chunk_size, arch, tree))
                    row["implementation"] = implementation
                    print(f"  [{repeat + 1}/{args.repeats}] {model:18s} {implementation} "
                          f"{objective} "
                          f"L={window:5d}: {row['tokens_per_s']:9.0f} tok/s "
                          f"({row['tokens_per_cpu_s']:7.0f} per CPU-s), "
                          f"+{row['step_mem_mib']:7.0f} MiB",
                          flush=True)
                    rows.append(row)
    # one row per cell: the median over the repeats
    frame = pd.DataFrame(rows)
    if "implementation" not in frame:
        frame["implementation"] = "new"
    table = (frame.groupby(["model", "attention", "objective", "window", "implementation"],
                           sort=False, as_index=False).median())
    table.insert(4, "repeats", "interleaved" if args.interleaved else args.repeats)
    table.insert(4, "arch", arch_label(arch, args.num_features))
    # On a shared CPU, wall time depends on other users' load; CPU time of the process is the
    # work done, so ratios use it there (wall time on GPU).
    speed = "tokens_per_s" if args.device == "cuda" else "tokens_per_cpu_s"
    key = ["objective", "window"]
    for reference, column in (("identity", "x_identity"), ("transformer", "x_exact")):
        ref = table[(table.model == reference)
                    & (table.implementation == "new")].set_index(key)[speed]
        table[column] = [
            getattr(row, speed) / ref.get((row.objective, row.window), float("nan"))
            for row in table.itertuples()
        ]
    return table if args.device == "cuda" else with_ceiling(table)


def run_quality(args: argparse.Namespace) -> pd.DataFrame:
    from hydra import compose, initialize_config_dir

    from protperf.cli.registry import load_config, register_schemas
    from protperf.data.datamodule import ProteinDataModule
    from protperf.reporting.baseline import label_counts, unigram_scores
    from protperf.training import train

    register_schemas()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, initialize_config_dir(
        version_base="1.3", config_dir=str(CONF_DIR)
    ):
        for objective in args.objectives:
            unigram = None
            for model in [m for m in args.models if m != "identity"]:
                cfg = compose("train", overrides=[
                    f"model={model}", f"task={objective}", f"seed={args.seed}",
                    f"trainer.max_steps={args.quality_steps}",
                    f"trainer.val_check_interval={args.quality_steps}",
                    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                    "callbacks=none", "logger=csv", f"output_dir={tmp}/{model}-{objective}",
                    *args.override,
                ])
                if unigram is None:
                    config = load_config("train", cfg)
                    torch.manual_seed(args.seed)
                    datamodule = ProteinDataModule(config.data, objective=objective)
                    datamodule.setup("fit")
                    unigram = unigram_scores(
                        label_counts(datamodule.train_dataloader(), config.model.vocab_size),
                        label_counts(datamodule.val_dataloader(), config.model.vocab_size),
                    )
                start = time.perf_counter()
                summary = train(cfg)
                rows.append({
                    "model": model, "objective": objective, "steps": summary["step"],
                    "val_ppl": summary["val_ppl"], "val_acc_pct": 100 * summary["val_acc"],
                    "unigram_ppl": unigram[0], "unigram_acc_pct": 100 * unigram[1],
                    "train_s": time.perf_counter() - start,
                })
                print(f"  {model:18s} {objective}: val ppl {summary['val_ppl']:.3f} "
                      f"(unigram {unigram[0]:.3f})", flush=True)
    table = pd.DataFrame(rows)
    exact = table[table.model == "transformer"].set_index("objective")["val_ppl"]
    table["ppl_vs_exact"] = [
        row.val_ppl / exact.get(row.objective, float("nan")) for row in table.itertuples()
    ]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, nargs="+", default=[1024, 4096, 8192])
    parser.add_argument("--models", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--objectives", nargs="+", default=["mlm", "clm"],
                        choices=["mlm", "clm"])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--interleaved", action="store_true",
                        help="speed only: all models of a (window, direction) in one process, "
                             "one step of each in turn, medians of --steps per-step times")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run every cell this many times (fresh processes, whole rounds "
                             "interleaved) and report the median")
    parser.add_argument("--num-features", type=int, default=128)
    # the throughput model; the quality runs train the Hydra config's models (--override)
    parser.add_argument("--dim", type=int, default=ARCH["dim"],
                        help="throughput model width D (quality runs: see --override)")
    parser.add_argument("--num-heads", type=int, default=ARCH["num_heads"])
    parser.add_argument("--num-layers", type=int, default=ARCH["num_layers"])
    parser.add_argument("--ffn-dim", type=int, default=ARCH["ffn_dim"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--old-commit", default=None, metavar="REV",
                        help="also run the Performers with the protperf package of this git "
                             "revision (fresh processes; not with --interleaved)")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="causal Performer chunk size (default: the config's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quality-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--override", nargs="*", default=[],
                        help="extra Hydra overrides for the quality runs")
    parser.add_argument("--skip", choices=["throughput", "quality"], nargs="*", default=[])
    add_output_options(parser, "training_throughput.csv, training_quality.csv")
    args = parser.parse_args()

    accelerator = torch.cuda.get_device_name() if args.device == "cuda" else None
    if "throughput" not in args.skip:
        run = provenance(sys.argv[1:], threads=args.threads, accelerator=accelerator)
        print(f"throughput ({run['machine']}, torch {run['torch']}, {args.device}, "
              f"{args.threads} threads):", flush=True)
        with tempfile.TemporaryDirectory(prefix="protperf-old-") as tmp:
            old = old_tree(args.old_commit, Path(tmp)) if args.old_commit else None
            table = run_throughput(args, old)
        paths = log_run("training_throughput", table, run, args.out_dir)
        print(table.to_string(index=False), f"\nappended to {paths[0]}; wrote {paths[1]}")
    if "quality" not in args.skip:
        print(f"quality, {args.quality_steps} steps each:", flush=True)
        run = provenance(sys.argv[1:], accelerator=accelerator)
        table = run_quality(args)
        paths = log_run("training_quality", table, run, args.out_dir)
        print(table.to_string(index=False), f"\nappended to {paths[0]}; wrote {paths[1]}")


if __name__ == "__main__":
    main()
