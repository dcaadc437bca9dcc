"""Planted positive controls through the real analysis: recovered r against beta and m.

Every control is a one-layer model whose exact attention logits are beta x BLOSUM62 (+ a
per-head key preference gamma x BLOSUM62[c_h, .] and positional noise; see
``protperf.analysis.controls``), saved as a checkpoint and analysed with the configuration of
``scripts/analyze.py`` (``protperf.cli.compose.compose_config`` + ``load_config`` +
``analyze``), as exact
attention and as FAVOR+ softmax / ReLU with m random features (linear-time aggregate).

    python scripts/benchmark_controls.py                      # the README table (~10 min, 1 CPU)
    python scripts/benchmark_controls.py --seeds 0 --betas 0.3 --features 256

Appends to ``benchmarks/blosum_controls.csv`` (one row per control and seed, with provenance:
commit, date, machine, cores, torch, threads, args), regenerates ``benchmarks/README.md`` and
prints the medians over seeds. Accuracy, not speed: the numbers do not depend on the load
of the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
from benchmark_log import add_output_options, log_run, provenance

from protperf.analysis.controls import PlantedConfig, save_planted_checkpoint
from protperf.analysis.report import analyze
from protperf.cli.compose import compose_config
from protperf.cli.registry import load_config
from protperf.reporting.tables import markdown_table

REPO = Path(__file__).resolve().parents[1]


def controls(args: argparse.Namespace):
    """(family, PlantedConfig) of every control of the sweep."""
    for seed in args.seeds:
        for beta in args.betas:
            for diagonal in (True, False):
                for kind in ("exact", "favor_softmax", "favor_relu"):
                    for m in ([0] if kind == "exact" else args.features):
                        yield "pairwise", PlantedConfig(
                            beta=beta, plant_diagonal=diagonal, attention_kind=kind,
                            num_features=m or 256, seed=seed)
        for heads in args.vig_heads:
            for gamma in args.gammas:
                yield "key_preference", PlantedConfig(
                    beta=0.0, gamma=gamma, sigma=2.0, position_rank=8, num_heads=heads,
                    seed=seed)


def run_control(family: str, config: PlantedConfig, args, workdir: Path) -> dict:
    checkpoint = save_planted_checkpoint(config, workdir / "planted.ckpt")
    methods = "[similarity,vig,embedding]"
    analysis = load_config("analyze", compose_config("analyze", [
        f"checkpoint={checkpoint}", f"output_dir={workdir / 'analysis'}", f"methods={methods}",
        f"data.max_sequences={args.sequences}", f"data.max_length={args.max_length}",
        f"permutations={args.permutations}", "figures=false", "progress=false",
        "null_models=0",  # planted models: the Mantel p of the tables, no random-init floor
    ]))
    summary = analyze(analysis).summary
    pooled = summary["similarity"]["pooled"]
    return {
        "family": family, "kind": config.attention_kind,
        "m": config.num_features if config.attention_kind != "exact" else None,
        "beta": config.beta, "plant_diagonal": config.plant_diagonal, "gamma": config.gamma,
        "sigma": config.sigma, "position_rank": config.position_rank,
        "heads": config.num_heads, "seed": config.seed,
        "similarity_r": pooled["pearson_offdiag"], "similarity_p": pooled["pearson_offdiag_p"],
        "best_head_r": summary["similarity"]["best_heads"][0]["pearson_offdiag"],
        "vig_r": summary["vig"].get("pearson_offdiag"),
        "vig_p": summary["vig"].get("pearson_offdiag_p"),
        "embedding_r": summary["embedding"]["pearson_offdiag"],
        "sequences": summary["data"]["stats"].get("analyzed"),
    }


def indexed_table(frame: pd.DataFrame, corner: str) -> str:
    """A frame as a GitHub markdown table with its index as the first column, ``corner``."""
    return markdown_table(frame.rename_axis(corner).reset_index())


def markdown(frame: pd.DataFrame) -> str:
    """Medians over seeds: the pairwise table (r by beta x attention) and the Vig table."""
    lines = []
    pairwise = frame[frame["family"] == "pairwise"].copy()
    if len(pairwise):
        pairwise["attention"] = [k if k == "exact" else f"{k} m={int(m)}"
                                 for k, m in zip(pairwise["kind"], pairwise["m"], strict=True)]
        for diagonal, part in pairwise.groupby("plant_diagonal", sort=False):
            grouped = part.groupby(["attention", "beta"], sort=False).agg(
                r=("similarity_r", "median"), p=("similarity_p", "max")).reset_index()
            grouped["cell"] = [f"{r:.2f} (p<={p:.3f})" for r, p in zip(grouped["r"], grouped["p"],
                                                                     strict=True)]
            table = grouped.pivot(index="attention", columns="beta", values="cell")
            table = table.reindex(list(dict.fromkeys(grouped["attention"])))
            title = "BLOSUM62" if diagonal else "BLOSUM62 off-diagonal only (diagonal 0)"
            lines += [f"Planted logits beta x {title}: pooled `log_odds` Pearson r (off-diagonal)"
                      " with BLOSUM62, median over seeds (largest permutation p)", "",
                      indexed_table(table.rename(columns=lambda b: f"beta={b:g}"),
                                     "attention"), ""]
    vig = frame[frame["family"] == "key_preference"]
    if len(vig):
        grouped = vig.groupby(["heads", "gamma"]).agg(
            vig_r=("vig_r", "median"), vig_p=("vig_p", "max"),
            similarity_r=("similarity_r", "median"), similarity_p=("similarity_p", "min"),
        )
        grouped = grouped.apply(lambda column: column.map(lambda v: f"{v:.3f}"))
        grouped.index = [f"{h} heads, gamma={g:g}" for h, g in grouped.index]
        lines += ["Per-head key preference gamma x BLOSUM62[c_h, .] (beta = 0): Vig et al. r "
                  "(largest p) and the attention-mass similarity r (smallest p), medians over "
                  "seeds", "", indexed_table(grouped, "control"), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.1, 0.3, 1.0])
    parser.add_argument("--features", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--vig-heads", type=int, nargs="+", default=[4, 8, 20, 40])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    add_output_options(parser, "blosum_controls.csv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    stamp = provenance(sys.argv[1:], threads=args.threads)  # when the sweep started
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family, config in controls(args):
            row = run_control(family, config, args, Path(tmp))
            print(row, flush=True)
            rows.append(row)
    frame = pd.DataFrame(rows)
    output, _ = log_run("blosum_controls", frame, stamp, args.out_dir)
    print(markdown(frame))
    print(f"appended {len(frame)} rows to {output}")


if __name__ == "__main__":
    main()
