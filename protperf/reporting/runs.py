"""Collect a sweep's runs (Lightning CSV metrics + Hydra configs) into pandas tables.

A run is a directory holding ``csv/metrics.csv`` (``conf/logger/csv.yaml``) next to its Hydra
``.hydra/config.yaml`` (or, without it, the ``csv/hparams.yaml`` the trainer logs): e.g. every
``multirun/<time>/<n>_<model>-<task>/`` of ``python scripts/train.py -m ...``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from protperf.errors import DataError

DIRECTIONS = {"mlm": "BID", "clm": "UNI"}  # the paper's names: bidirectional / unidirectional
METRICS = ("loss", "acc", "ppl")
CURVE_COLUMNS = ["run", "model", "objective", "direction", "split", "step", *METRICS]


def find_runs(sweep_dir: str | Path) -> list[Path]:
    """Run directories under ``sweep_dir`` (those with ``csv/metrics.csv``), sorted."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory not found: {sweep_dir}")
    runs = sorted(p.parent.parent for p in sweep_dir.rglob("csv/metrics.csv"))
    if not runs:
        raise DataError(f"no runs in {sweep_dir}: no */csv/metrics.csv below it "
                         "(train with logger=csv or logger=many_loggers)")
    return runs


def run_config(run_dir: Path) -> dict:
    """The run's config as a plain dict (``.hydra/config.yaml``, else ``csv/hparams.yaml``)."""
    for path in (run_dir / ".hydra" / "config.yaml", run_dir / "csv" / "hparams.yaml"):
        if path.is_file():
            config = yaml.safe_load(path.read_text()) or {}
            for key in ("model", "task"):
                if not isinstance(config.get(key), dict):
                    raise DataError(f"{path}: no '{key}' section; not a protperf training run")
            return config
    raise FileNotFoundError(f"{run_dir}: neither .hydra/config.yaml nor csv/hparams.yaml")


def _overrides(run_dir: Path) -> str:
    path = run_dir / ".hydra" / "overrides.yaml"
    return " ".join(yaml.safe_load(path.read_text()) or []) if path.is_file() else ""


def run_curves(run_dir: Path, name: str | None = None) -> pd.DataFrame:
    """One run's learning curves in long form: one row per (split, step), columns
    :data:`CURVE_COLUMNS`; ``split`` is ``train`` (per-step values) or ``valid``."""
    path = run_dir / "csv" / "metrics.csv"
    metrics = pd.read_csv(path)
    if "step" not in metrics.columns or "val/loss" not in metrics.columns:
        raise DataError(f"{path}: expected columns 'step' and 'val/loss', "
                         f"found {', '.join(metrics.columns)}")
    config = run_config(run_dir)
    objective = config["task"]["objective"]
    frames = []
    for split, prefix in (("train", "train/"), ("valid", "val/")):
        columns = {f"{prefix}{m}": m for m in METRICS if f"{prefix}{m}" in metrics.columns}
        part = metrics.dropna(subset=[f"{prefix}loss"]) if f"{prefix}loss" in metrics else None
        if part is None or part.empty:
            continue
        part = part[["step", *columns]].rename(columns=columns)
        frames.append(part.assign(split=split))
    curves = pd.concat(frames, ignore_index=True)
    if "ppl" not in curves:
        curves["ppl"] = np.exp(curves["loss"])
    curves["ppl"] = curves["ppl"].fillna(np.exp(curves["loss"]))
    curves = curves.assign(
        run=name or run_dir.name,
        model=config["model"]["name"],
        objective=objective,
        direction=DIRECTIONS.get(objective, objective),
    )
    curves["step"] = curves["step"].astype(int)
    return curves[CURVE_COLUMNS]


def collect_runs(sweep_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All runs under ``sweep_dir`` -> ``(curves, summary)``.

    curves: every run's learning curves (:func:`run_curves`, ``run`` = path relative to the
        sweep directory).
    summary: one row per run: run, model, objective, direction, overrides; steps, the
        optimizer steps done (``summary.json``'s ``step`` when the run finished, else the last
        logged step + 1: Lightning's ``step`` column counts from 0); final and best validation
        loss / accuracy / perplexity from the curves (the run's ``summary.json`` values when
        it finished, with its test metrics if any); best_step in optimizer steps, as the best
        checkpoint is named.
    """
    sweep_dir = Path(sweep_dir)
    curves, rows = [], []
    for run_dir in find_runs(sweep_dir):
        name = str(run_dir.relative_to(sweep_dir)) if run_dir != sweep_dir else run_dir.name
        run = run_curves(run_dir, name)
        curves.append(run)
        valid = run[run["split"] == "valid"].sort_values("step")
        row = {
            "run": name,
            "model": run["model"].iloc[0],
            "objective": run["objective"].iloc[0],
            "direction": run["direction"].iloc[0],
            "overrides": _overrides(run_dir),
            "steps": int(run["step"].max()) + 1,
            "finished": (run_dir / "summary.json").is_file(),
        }
        if not valid.empty:
            last, best = valid.iloc[-1], valid.loc[valid["loss"].idxmin()]
            row.update(val_loss=last["loss"], val_acc=last["acc"], val_ppl=last["ppl"],
                       best_val_loss=best["loss"], best_step=int(best["step"]) + 1)
        summary_path = run_dir / "summary.json"
        if summary_path.is_file():
            summary = json.loads(summary_path.read_text())
            row.update({k: summary[k] for k in ("val_loss", "val_acc", "val_ppl", "test_loss",
                                                 "test_acc", "test_ppl") if k in summary})
            row["steps"] = int(summary.get("step", row["steps"]))
        rows.append(row)
    return pd.concat(curves, ignore_index=True), pd.DataFrame(rows)
