"""``protperf-collect-runs`` / ``scripts/collect_runs.py``: a sweep's runs -> tables + a figure.

    protperf-collect-runs multirun/2026-01-01_12-00-00
    protperf-collect-runs multirun/... --out results/ --metric ppl --smooth 20 --format svg

Writes to ``--out`` (default: the sweep directory): ``runs_curves.csv`` (every logged point of
every run, long form), ``runs_summary.csv`` and ``runs_summary.md`` (one row per run: final and
best validation metrics, test metrics if evaluated) and ``runs_<metric>.<format>`` (train
dashed / validation solid per model, one panel per direction, as in the Performer paper).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from protperf.checkpoint.atomic import atomic_path, check_writable
from protperf.errors import OutputWriteError
from protperf.reporting.run_plots import plot_curves
from protperf.reporting.runs import METRICS, collect_runs
from protperf.reporting.tables import write_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a sweep's output directory (multirun/...)")
    parser.add_argument("--out", type=Path, default=None, help="output directory")
    parser.add_argument("--metric", choices=METRICS, default="acc")
    parser.add_argument("--smooth", type=int, default=1,
                        help="rolling mean over this many logged training points")
    parser.add_argument("--format", choices=("png", "svg", "pdf"), default="png")
    args = parser.parse_args(argv)
    try:
        curves, summary = collect_runs(args.sweep_dir)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = args.out or args.sweep_dir
    figure = out / f"runs_{args.metric}.{args.format}"
    try:  # each file complete or absent; a read-only or full disk: one line
        check_writable(out, "tables")
        with atomic_path(out / "runs_curves.csv", "table") as partial:
            curves.to_csv(partial, index=False)
        write_table(summary, out / "runs_summary")
        with atomic_path(figure, "figure") as partial:
            plot_curves(curves, args.metric, args.smooth).savefig(partial, dpi=150,
                                                                  format=args.format)
    except OutputWriteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary.drop(columns="overrides").to_string(index=False))
    print(f"wrote {out / 'runs_summary.csv'}, {out / 'runs_curves.csv'}, {figure}")
    return 0


def run() -> None:
    """Console entry point."""
    sys.exit(main())
