"""Benchmark results as one CSV per benchmark, rows with provenance, and a generated README.

Every benchmark script appends its rows to ``benchmarks/<name>.csv`` together with the same
provenance columns (:data:`PROVENANCE`: commit, date, machine, cores, torch, threads, args),
then regenerates ``benchmarks/README.md``. A CSV is an append-only log: a rerun with the same
arguments adds rows, and the README shows, for every distinct argument string, the rows of its
latest run (the run of the last row with those arguments; a run is the rows sharing commit,
date and arguments). Earlier runs stay in the CSV and in git history.

    python scripts/benchmark_report.py                     # regenerate benchmarks/README.md
    python scripts/benchmark_log.py --dir benchmarks      # the same

Where rows go is explicit: ``--out-dir DIR`` (default: :data:`BENCHMARK_DIR`, the tracked
``benchmarks/`` folder of the checkout these scripts belong to, which every script's ``--help``
prints), or ``--smoke`` for a quick check that writes to a new temporary folder and never
touches ``benchmarks/`` (:func:`add_output_options`).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from protperf.reporting.tables import markdown_table

#: Columns every benchmark row carries, after its result columns.
PROVENANCE = ("commit", "date", "machine", "cores", "torch", "threads", "args")
#: The repository this module belongs to (its commit is the rows' ``commit``).
REPO = Path(__file__).resolve().parents[1]
#: Where the scripts write by default.
BENCHMARK_DIR = REPO / "benchmarks"
#: Options that choose where results go, not what is measured: left out of ``args``.
OUTPUT_OPTIONS = ("--out-dir", "--tmp-dir")


class _SmokeRun(argparse.Action):
    """``--smoke``: unless ``--out-dir`` was given, write to a new temporary folder."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, True)
        if namespace.out_dir == BENCHMARK_DIR:
            namespace.out_dir = Path(tempfile.mkdtemp(prefix="protperf-benchmark-smoke-"))
            print(f"smoke run: rows go to {namespace.out_dir}, not {BENCHMARK_DIR}",
                  file=sys.stderr, flush=True)


def add_output_options(parser: argparse.ArgumentParser, outputs: str) -> None:
    """``--out-dir`` (default :data:`BENCHMARK_DIR`, named in ``--help``) and ``--smoke``;
    ``outputs`` names what the script writes there, e.g. ``"gpu.csv"``."""
    parser.add_argument(
        "--out-dir", type=Path, default=BENCHMARK_DIR,
        help=f"where {outputs} and the generated README.md go (default: {BENCHMARK_DIR}, the "
             "tracked log of this checkout; rows are appended)")
    parser.add_argument(
        "--smoke", action=_SmokeRun, nargs=0, default=False,
        help="a quick check: write to a new temporary folder (printed) instead of "
             "benchmarks/, unless --out-dir is given")


@dataclass(frozen=True)
class Pivot:
    """A run shown as a grid: one row per value of ``rows``, one column per value of ``column``."""

    rows: tuple[str, ...]
    column: str
    cell: Callable[[pd.Series], str | float]  # a CSV row (text cells) -> what the grid shows
    #: how rows sharing a grid cell (seeds, repeats) combine: ``last`` or ``median`` (numbers)
    aggfunc: str = "last"


@dataclass(frozen=True)
class BenchmarkSpec:
    """How the README presents one benchmark's CSV."""

    title: str
    rerun: str  # the command that appends a new run
    about: str  # one paragraph: what is measured, units
    columns: tuple[str, ...]  # result columns shown, in this order (without a pivot)
    figure: str | None = None  # a PNG beside the CSV, shown when present
    pivot: Pivot | None = None


def time_and_memory(row: pd.Series) -> str:
    """'3.32 s / 0.83 GiB' (and its note) for a measured attention row, else its status."""
    if row["status"] != "ok":
        return row["status"]
    note = f" ({row['note']})" if row.get("note") else ""

    def ratios(*columns: tuple[str, str]) -> str:
        shown = [f"{label} {float(row[c]):.2g}" for c, label in columns if row.get(c)]
        return f" [{', '.join(shown)}]" if shown else ""

    time = ratios(("x_identity", "x id"), ("floor_x_identity", "floor x id"),
                  ("x_exact", "exact/"))
    memory = ratios(("mem_x_exact", "x exact"))
    return (f"{float(row['time_s']):.3g} s{time} / {float(row['peak_mib']) / 1024:.3g} GiB"
            f"{memory}{note}")


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "checkpoint_io": BenchmarkSpec(
        title="Checkpoint integrity: the cost of the content hash and the finite check",
        rerun="python scripts/benchmark_checkpoint_io.py",
        about="A float32 model of about `file_mb` MB written by the one checkpoint writer "
              "(atomic, with the sha256 of each tensor) and loaded back, page cache warm; "
              "medians of `repeats` runs in seconds: `load_s` torch.load alone, `hash_s` the "
              "hash check, `finite_s` the NaN/inf check, `protperf_load_s` protperf's whole "
              "checked load, `write_s` the whole write.",
        columns=("file_mb", "tensors", "load_s", "hash_s", "finite_s", "protperf_load_s",
                 "write_s", "hash_mb_per_s"),
    ),
    "attention": BenchmarkSpec(
        title="Attention layer: time and memory against sequence length",
        rerun="python scripts/benchmark_attention.py",
        about="Full multi-head layer (q/k/v/out projections), forward + backward, batch 1, "
              "8 heads, head dim 64, m = 256, float32, one fresh process per configuration; "
              "`time_s` is the median of the timed runs after a warm-up (`repeats`), "
              "`peak_mib` the peak RSS above the process's baseline; `implementation`: `new` "
              "(this checkout) or the git revision given by `--old-commit`. In brackets, from "
              "CPU time: `x id` the time over the no-attention layer's, `exact/` exact "
              "attention's time over the row's, `floor x id` the floor's (`projections`: "
              "all four projections trained, no attention; the floor adds the attention's "
              "matrix-product FLOPs at the best GEMM rate measured, see the script's "
              "docstring); after the memory, `x exact` the peak over "
              "exact attention's. `chunk_size`: the causal Performer's chunk size C "
              "(`--chunk-size C [C ...]` sweeps it).",
        columns=("method", "mode", "chunk_size", "length", "implementation", "status", "time_s",
                 "cpu_s", "peak_mib", "x_identity", "x_projections", "floor_s",
                 "floor_x_identity", "x_exact", "floor_x_exact", "mem_x_exact",
                 "gemm_gflops", "repeats", "note"),
        figure="attention.png",
        pivot=Pivot(rows=("method", "mode", "chunk_size", "implementation"), column="length",
                    cell=time_and_memory),
    ),
    "attention_approx_error": BenchmarkSpec(
        title="FAVOR+ approximation error by feature type and m",
        rerun="python scripts/benchmark_attention.py --lengths 512",
        about="Relative Frobenius error of bidirectional Performer-softmax outputs against "
              "exact softmax attention (same projections), mean over `seeds`; measured by the "
              "attention benchmark unless `--skip-approx` (`--lengths 512` keeps its timing "
              "part short).",
        columns=("feature_type", "num_features", "length", "seeds", "rel_error_mean"),
        pivot=Pivot(rows=("feature_type", "length", "seeds"), column="num_features",
                    cell=lambda row: f"{float(row['rel_error_mean']):.4f}"),
    ),
    "training_throughput": BenchmarkSpec(
        title="Training throughput and memory",
        rerun="python scripts/benchmark_training.py --skip quality",
        about="Full training steps (forward, backward, AdamW) at batch 1; `tokens_per_cpu_s` "
              "is tokens per CPU-second of the process (wall time on GPU: `tokens_per_s`), "
              "`x_identity` / `x_exact` the speed relative to the no-attention and exact "
              "models of the same window and direction; `max_x_identity` (CPU) the largest "
              "`x_identity` the model's extra matrix products allow at the best GEMM rate "
              "measured (`gflop_per_step`, `gemm_gflops`; elementwise work counted as free); "
              "`repeats` is the number of rounds "
              "of fresh processes (median) or `interleaved` (all models in one process, "
              "median step time; no memory column).",
        columns=("model", "implementation", "objective", "window", "arch", "repeats",
                 "tokens_per_cpu_s",
                 "tokens_per_s", "step_mem_mib", "x_identity", "max_x_identity", "x_exact",
                 "gflop_per_step"),
    ),
    "training_quality": BenchmarkSpec(
        title="Quality at equal steps on the bundled sample",
        rerun="python scripts/benchmark_training.py --skip throughput",
        about="Each model trained for the same number of steps through the Hydra config; "
              "validation perplexity and accuracy next to the amino-acid frequency "
              "(unigram) model, and the perplexity relative to the exact Transformer.",
        columns=("model", "objective", "steps", "val_ppl", "val_acc_pct", "unigram_ppl",
                 "unigram_acc_pct", "ppl_vs_exact", "train_s"),
    ),
    "gpu": BenchmarkSpec(
        title="GPU: attention, training throughput and the longest trainable length",
        rerun="python scripts/benchmark_gpu.py",
        about="`table=attention`: fwd+bwd of one attention call in bf16 (H 8, d 64, m 256, "
              "B x L = 131072), ms and peak CUDA GiB, for SDPA (flash) and protperf's torch and "
              "fla paths; `table=training`: tokens/s and peak GiB of the paper's concatenated "
              "model (8 heads, 6 layers, d_ff 2048, D 512, m 256) in bf16-mixed; "
              "`table=longest`: the longest L that trains at batch 1. `device` names the GPU.",
        columns=("table", "method", "length", "batch", "status", "ms", "tokens_per_s",
                 "peak_gib", "device", "fla"),
    ),
    "inference": BenchmarkSpec(
        title="Inference: generation and embedding against length",
        rerun="python scripts/benchmark_inference.py",
        about="Each cell in a fresh process, batch 1. `task=generate`: tokens generated per "
              "second (`per_s` wall, `per_cpu_s` per CPU-second), ms per token at the start "
              "(`first_ms`) and in the last 10% (`last_ms`), peak memory added (`peak_mib`) "
              "and the decoding state or KV cache (`state_mib`): Performers decode in recurrent "
              "form, exact attention with a KV cache. `task=embed`: residues per second and "
              "peak memory for one protein of `length` residues.",
        columns=("task", "model", "length", "status", "per_s", "per_cpu_s", "first_ms",
                 "last_ms", "peak_mib", "state_mib", "arch"),
    ),
    "long_proteins": BenchmarkSpec(
        title="Long proteins: one protein embedded in one pass, exact vs Performer",
        rerun="python scripts/benchmark_long_proteins.py",
        about="A model of ESM-2 8M's shape and architecture (6 layers, D 320, 20 heads, rotary; "
              "random weights) loaded from an export directory with `model.attention.kind` "
              "overridden; one protein of `length` residues, one forward pass, each cell in a "
              "fresh process under an address-space limit. Cells: wall time of the pass and "
              "peak RSS above the loaded model (`cpu_s` in the CSV), or why the cell did not "
              "run (skipped / failed).",
        columns=("method", "m", "length", "implementation", "status", "time_s", "cpu_s",
                 "peak_mib"),
        pivot=Pivot(rows=("method", "m", "implementation"), column="length",
                    cell=time_and_memory),
    ),
    "blosum_controls": BenchmarkSpec(
        title="Planted BLOSUM62 controls: what the attention analysis recovers",
        rerun="python scripts/benchmark_controls.py",
        about="One-layer models whose exact attention logits are beta x BLOSUM62 (`pairwise`; "
              "`plant_diagonal=False`: diagonal planted as 0) or whose heads prefer keys by "
              "gamma x BLOSUM62 (`key_preference`, the Vig et al. setting), analysed through "
              "the `scripts/analyze.py` path; cells are the pooled `log_odds` Pearson r with "
              "BLOSUM62 (off-diagonal), median over seeds. Per-seed rows, permutation p, "
              "Vig r and embedding r are in the CSV.",
        columns=("family", "kind", "m", "beta", "similarity_r", "similarity_p", "vig_r"),
        pivot=Pivot(rows=("family", "kind", "m", "plant_diagonal", "heads", "gamma"),
                    column="beta", cell=lambda row: float(row["similarity_r"] or "nan"),
                    aggfunc="median"),
    ),
    "transfer": BenchmarkSpec(
        title="A pretrained protein masked LM as a Performer: zero-shot and recovery",
        rerun="python scripts/benchmark_transfer.py",
        about="AntiBERTy (8 layers x 8 heads, imported) on antibody variable domains, 15 % "
              "masked with one fixed seed: masked-residue accuracy over the 20 amino acids "
              "(cells; median over feature seeds). `set=test`: the bundled test set (PDB, "
              "like the fine-tune set); `set=heldout`: repertoire sequencing, another origin "
              "(rows without a set: the test set, older runs). `stage=zero-shot`: the weights "
              "unchanged under each attention; `stage=convert`: `protperf.transfer.convert` "
              "after `step` steps of batch 4 on the fine-tune set (`recipe`), with `recovery` "
              "(Performer / exact accuracy) and the training CPU seconds `cpu_s` in the CSV; "
              "`stage=finetune`: the earlier hand-written loop (`recipe=mlm`: masked-LM loss, "
              "all weights; `transfer`: q/k, lr 1e-3).",
        columns=("model", "stage", "attention", "m", "recipe", "set", "step", "accuracy",
                 "recovery", "cpu_s"),
        pivot=Pivot(rows=("model", "stage", "attention", "m", "recipe", "set"), column="step",
                    cell=lambda row: float(row["accuracy"]), aggfunc="median"),
    ),
    "data": BenchmarkSpec(
        title="FASTA preparation throughput",
        rerun="python scripts/benchmark_data.py",
        about="Generated real-like FASTA (60-residue lines) and a `gzip -6` copy prepared with "
              "1 and 2 processes; MB are MB of FASTA text, `file_mb` the size read, CPU time "
              "of the child and its workers, peak RSS of all processes.",
        columns=("input_mb", "format", "file_mb", "processes", "seconds", "mb_per_s",
                 "seqs_per_s", "cpu_s", "mb_per_cpu_s", "peak_rss_mb", "load_before"),
    ),
}


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(repo: Path = REPO) -> str:
    """Short hash of ``repo``'s HEAD, with ``+dirty`` when tracked files differ (other than the
    benchmark logs themselves, which earlier runs may just have appended to); "" outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                    ":(exclude)benchmarks")
    except (OSError, subprocess.CalledProcessError):
        return ""
    return commit + ("+dirty" if dirty else "")


def command_args(argv: Sequence[str]) -> str:
    """The arguments as one shell-quoted string, without the output options."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in OUTPUT_OPTIONS:
            skip = "=" not in arg
            continue
        kept.append(arg)
    return shlex.join(kept)


def provenance(argv: Sequence[str], threads: int | str | None = None,
               accelerator: str | None = None) -> dict[str, object]:
    """The provenance columns of one run: ``argv`` are the script's arguments (no program).

    threads: torch threads of the measurement (default: this process's; "" where they do not
    apply); accelerator: a GPU name, appended to the machine.
    """
    import torch

    machine = cpu_model() + (f" + {accelerator}" if accelerator else "")
    return {
        "commit": git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads() if threads is None else threads,
        "args": command_args(argv),
    }


def old_tree(revision: str, directory: Path) -> tuple[str, Path]:
    """The ``protperf`` package of git ``revision`` extracted under ``directory`` (``git
    archive``), for measuring an old implementation beside this checkout's: put the folder
    first on a worker's ``PYTHONPATH``. Returns (short hash, directory)."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=True)

    short = git("rev-parse", "--short", revision).stdout.decode().strip()
    subprocess.run(["tar", "-x", "-C", str(directory)],
                   input=git("archive", revision, "protperf").stdout, check=True)
    return short, directory


def import_from(tree: Path | None) -> None:
    """In a spawned worker, make ``import protperf`` load the package under ``tree``.

    A spawned process inherits its parent's ``sys.path`` (not ``PYTHONPATH``), and this module
    has imported this checkout's ``protperf`` already: drop those modules, put ``tree`` first.
    None: nothing changes.
    """
    if tree is None:
        return
    for name in [name for name in sys.modules if name.split(".")[0] == "protperf"]:
        del sys.modules[name]
    sys.path.insert(0, str(tree))


def read_log(path: Path) -> pd.DataFrame:
    """A benchmark CSV as text cells (appending rewrites nothing that was measured)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in PROVENANCE if column not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a benchmark log, missing column(s) {', '.join(missing)}")
    return frame


def append_rows(name: str, rows: pd.DataFrame, run: dict[str, object],
                directory: Path = BENCHMARK_DIR) -> Path:
    """Append ``rows`` with the provenance ``run`` to ``directory/<name>.csv``; returns it.

    Columns new to the file are added (empty in its earlier rows); the provenance columns stay
    last.
    """
    if rows.empty:
        raise ValueError(f"no rows to append to {name}.csv")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.csv"
    new = rows.drop(columns=[c for c in PROVENANCE if c in rows.columns]).assign(**run)
    if path.exists():
        old = read_log(path)
        results = [c for c in old.columns if c not in PROVENANCE]
        results += [c for c in new.columns if c not in PROVENANCE and c not in results]
        new = pd.concat([old, new], ignore_index=True)
    else:
        results = [c for c in new.columns if c not in PROVENANCE]
    new[results + list(PROVENANCE)].to_csv(path, index=False)
    return path


def latest_runs(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """For every distinct ``args``, the rows of its latest run; newest first."""
    run_of = frame["commit"] + "\x00" + frame["date"] + "\x00" + frame["args"]
    last_row = {args: index for index, args in frame["args"].items()}  # last occurrence wins
    runs = [frame[run_of == run_of[index]] for index in last_row.values()]
    return sorted(runs, key=lambda run: run.index[-1], reverse=True)


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells back to numbers where a whole column parses, for formatting."""
    out = frame.copy()
    for column in out.columns:
        converted = pd.to_numeric(out[column].replace("", float("nan")), errors="coerce")
        if converted.notna().sum() == (out[column] != "").sum():
            out[column] = converted
    return out


def describe_run(run: pd.DataFrame) -> str:
    """One line of provenance for a run: commit, day, machine, torch, threads, arguments."""
    first = run.iloc[0]
    parts = [f"commit `{first['commit'] or 'unknown'}`", first["date"][:10],
             f"{first['machine']}, {first['cores']} cores"]
    if first["torch"]:
        parts.append(f"torch {first['torch']}")
    if first["threads"]:
        parts.append(f"threads {first['threads']}")
    return ", ".join(parts) + f"; arguments: `{first['args'] or '(defaults)'}`"


def pivot_table(run: pd.DataFrame, pivot: Pivot) -> pd.DataFrame:
    """The run as a grid of ``pivot.cell`` texts, columns in numeric order if they are numbers."""
    cells = run.assign(_cell=run.apply(pivot.cell, axis=1))
    rows = [row for row in pivot.rows if row in run.columns]  # logs older than a column
    grid = cells.pivot_table(index=rows, columns=pivot.column, values="_cell",
                             aggfunc=pivot.aggfunc, sort=False)
    if pivot.aggfunc != "last":
        grid = grid.map(lambda value: "" if pd.isna(value) else f"{value:.2f}")
    numeric = pd.to_numeric(pd.Series(grid.columns), errors="coerce")
    if numeric.notna().all():
        grid = grid[[grid.columns[i] for i in numeric.argsort()]]
    grid.columns = [f"{pivot.column} {c}" for c in grid.columns]
    return grid.reset_index().fillna("")


def benchmark_section(name: str, frame: pd.DataFrame, directory: Path) -> list[str]:
    """The README lines of one benchmark: title, how to rerun, one table per latest run."""
    spec = BENCHMARKS.get(name)
    title = spec.title if spec else name
    lines = [f"## {title}", "", f"`{name}.csv`, {len(frame)} rows in all."]
    if spec:
        lines += ["", spec.about, "", f"Rerun (appends a run to `{name}.csv`): `{spec.rerun}`"]
        if spec.figure and (directory / spec.figure).exists():
            lines += ["", f"![{title}]({spec.figure})"]
    for run in latest_runs(frame):
        if spec and spec.pivot:
            table = pivot_table(run, spec.pivot)
        else:
            shown = [c for c in (spec.columns if spec else run.columns)
                     if c in run.columns and c not in PROVENANCE and (run[c] != "").any()]
            table = _numeric(run[shown])
        lines += ["", describe_run(run) + ":", "", markdown_table(table).rstrip()]
    return lines + [""]


def render_report(directory: Path = BENCHMARK_DIR) -> str:
    """The text of ``directory/README.md`` from every ``*.csv`` there (known ones first)."""
    paths = sorted(directory.glob("*.csv"),
                   key=lambda p: (list(BENCHMARKS).index(p.stem) if p.stem in BENCHMARKS
                                  else len(BENCHMARKS), p.stem))
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python scripts/benchmark_report.py` (every benchmark script also "
        "regenerates it after appending its rows): do not edit by hand.",
        "",
        "One CSV per benchmark. Each row carries its provenance: `commit`, `date` (UTC), "
        "`machine` (CPU model), `cores`, `torch`, `threads` and `args` (the script's "
        "arguments). A rerun appends rows; below, each distinct argument string shows its "
        "latest run, newest first. Timings on a shared machine move by several percent "
        "between runs: compare ratios within one run.",
        "",
    ]
    for path in paths:
        lines += benchmark_section(path.stem, read_log(path), directory)
    return "\n".join(lines)


def write_report(directory: Path = BENCHMARK_DIR) -> Path:
    """Regenerate ``directory/README.md``; returns its path."""
    path = directory / "README.md"
    path.write_text(render_report(directory))
    return path


def log_run(name: str, rows: pd.DataFrame, run: dict[str, object],
            directory: Path = BENCHMARK_DIR) -> tuple[Path, Path]:
    """Append a run's rows and regenerate the README; returns (CSV, README) paths."""
    csv_path = append_rows(name, rows, run, directory)
    return csv_path, write_report(directory)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate benchmarks/README.md from the CSVs.")
    parser.add_argument("--dir", type=Path, default=BENCHMARK_DIR,
                        help="the directory of benchmark CSVs (default: benchmarks/)")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"error: {args.dir} is not a directory", file=sys.stderr)
        return 2
    try:
        path = write_report(args.dir)
    except (ValueError, pd.errors.ParserError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
