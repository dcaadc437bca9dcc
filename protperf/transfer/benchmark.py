"""The transfer benchmark: a pretrained masked LM as a Performer, zero-shot and converted.

Rows (``benchmarks/transfer.csv`` through ``scripts/benchmark_transfer.py``), one per scored
set (``set``: ``test``, the bundled antibody test set; ``heldout``, the set of another origin):

- ``stage=zero-shot``: the weights as they are, exact attention and every Performer kind x m x
  feature seed, scored on the same masked batches;
- ``stage=convert``: the learning curve of :func:`protperf.transfer.convert` (the code path of
  ``protperf-convert``, on the Lightning trainer) for each converted kind x m: the student is
  scored at each of ``eval_steps`` by a callback, with the training CPU time spent by then
  (``cpu_s``: ``time.process_time`` of the training steps, validation and scoring excluded).

Scores (:mod:`protperf.transfer.evaluation`): accuracy and perplexity of the masked residues
over the 20 amino acids; ``recovery`` = accuracy / the exact model's on the same set.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pandas as pd
import torch

from protperf.attention import AttentionConfig
from protperf.checkpoint.load import load_model
from protperf.data.config import DataConfig
from protperf.transfer.conversion import with_attention
from protperf.transfer.evaluation import MaskedLMScore, masked_batches, masked_lm_score
from protperf.transfer.settings import ConvertSettings

Batches = list[dict[str, torch.Tensor]]


@dataclass
class TransferBenchmarkConfig:
    """What the benchmark measures (the script's options).

    kinds / num_features / feature_seeds: the zero-shot grid; test_sequences: how many
    sequences of each set are scored (evenly spread over it); mask_seed: the masks;
    convert_kinds x convert_features are converted (``settings``: ``convert.*``; its
    target_recovery is ignored: every step runs) for ``steps`` steps of ``batch_size``
    sequences and scored at ``eval_steps``.
    """

    kinds: tuple[str, ...] = ("favor_softmax", "favor_relu")
    num_features: tuple[int, ...] = (64, 256, 1024)
    feature_seeds: tuple[int, ...] = (0, 1, 2)
    test_sequences: int = 128
    mask_seed: int = 0
    eval_batch_size: int = 16
    convert_kinds: tuple[str, ...] = ("favor_softmax", "favor_relu")
    convert_features: tuple[int, ...] = (256,)
    steps: int = 1000
    eval_steps: tuple[int, ...] = (0, 50, 100, 200, 300, 400, 600, 800, 1000)
    batch_size: int = 4
    settings: ConvertSettings = field(default_factory=ConvertSettings)


def spread(items: Sequence, count: int) -> list:
    """``count`` items evenly spaced over ``items`` (all of them if fewer)."""
    if count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


class CurveCallback(pl.Callback):
    """Scores the converted student on fixed masked batches of each set at ``steps`` (0 =
    before the first step) and counts the CPU time of the training steps; ``points`` holds
    ``(step, cpu_s, {set: score})``."""

    def __init__(self, sets: Mapping[str, Batches], steps: Sequence[int]) -> None:
        self.sets, self.steps = dict(sets), set(steps)
        self.points: list[tuple[int, float, dict[str, MaskedLMScore]]] = []
        self.cpu_s = 0.0
        self._start = 0.0

    def _score(self, module: pl.LightningModule, step: int) -> None:
        scores = {name: masked_lm_score(module.model, batches)
                  for name, batches in self.sets.items()}
        self.points.append((step, self.cpu_s, scores))

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.global_step == 0 and 0 in self.steps:
            self._score(module, 0)

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._start = time.process_time()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.cpu_s += time.process_time() - self._start
        if trainer.global_step in self.steps:
            self._score(module, trainer.global_step)


def recipe_name(settings: ConvertSettings) -> str:
    """The recipe of a conversion in one cell: ``transfer qk lr=0.003 cosine warmup=20``
    (``+polish=N`` when the last N steps polish on the masked-LM loss)."""
    name = (f"transfer {settings.trainable} lr={settings.lr:g} {settings.schedule} "
            f"warmup={settings.warmup_steps}")
    return name + (f" +polish={settings.polish_steps}" if settings.polish_steps else "")


def run_benchmark(
    checkpoint: str | Path,
    train_fasta: str | Path,
    sets: Mapping[str, Sequence[str]],
    config: TransferBenchmarkConfig,
    work_dir: str | Path,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Every row of the benchmark for the exact-attention MLM ``checkpoint``: ``sets`` maps a
    set name to its sequences; conversions fine-tune on ``train_fasta`` (prepared and written
    under ``work_dir``)."""
    teacher = with_attention(load_model(checkpoint), AttentionConfig(kind="exact"))
    scored = {name: masked_batches(spread(seqs, config.test_sequences), config.mask_seed,
                                   config.eval_batch_size) for name, seqs in sets.items()}
    rows: list[dict[str, Any]] = []
    exact: dict[str, MaskedLMScore] = {}

    def add(stage: str, kind: str, m: int | str, seed: int | str, recipe: str, step: int,
            name: str, score: MaskedLMScore, cpu_s: float | str = "",
            eval_s: float | str = "") -> None:
        recovery = score.accuracy / exact[name].accuracy if name in exact else 1.0
        rows.append({"stage": stage, "attention": kind, "m": m, "feature_seed": seed,
                     "recipe": recipe, "step": step, "set": name,
                     "accuracy": round(score.accuracy, 4),
                     "perplexity": round(score.perplexity, 3), "recovery": round(recovery, 4),
                     "cpu_s": cpu_s if cpu_s == "" else round(cpu_s, 2),
                     "eval_s": eval_s, "test_sequences": len(sets[name]) if
                     config.test_sequences >= len(sets[name]) else config.test_sequences,
                     "masked_tokens": score.tokens})
        log(f"{stage} {kind} m={m} seed={seed} {recipe} step={step} {name}: "
            f"acc={score.accuracy:.4f} ppl={score.perplexity:.3f} recovery={recovery:.4f}"
            + ("" if cpu_s == "" else f" cpu={cpu_s / 60:.2f} min"))

    def zero_shot(kind: str, model, m: int | str = "", seed: int | str = "") -> None:
        for name, batches in scored.items():
            start = time.process_time()
            score = masked_lm_score(model, batches)
            if kind == "exact":
                exact[name] = score
            add("zero-shot", kind, m, seed, "", 0, name, score,
                eval_s=round(time.process_time() - start, 1))

    zero_shot("exact", teacher)
    for kind in config.kinds:
        for m in config.num_features:
            for seed in config.feature_seeds:
                zero_shot(kind, with_attention(
                    teacher, AttentionConfig(kind=kind, num_features=m), seed), m, seed)
    work_dir = Path(work_dir)
    settings = dataclasses.replace(config.settings, target_recovery=None)
    for kind in config.convert_kinds:
        for m in config.convert_features:
            curve = convert_curve(checkpoint, train_fasta, scored, config, settings, kind, m,
                                  work_dir)
            for step, cpu_s, scores in curve.points:
                for name, score in scores.items():
                    add("convert", kind, m, settings.feature_seed, recipe_name(settings), step,
                        name, score, cpu_s)
    return pd.DataFrame(rows)


def convert_curve(
    checkpoint: str | Path, train_fasta: str | Path, scored: Mapping[str, Batches],
    config: TransferBenchmarkConfig, settings: ConvertSettings, kind: str, m: int,
    work_dir: Path,
) -> CurveCallback:
    """One :func:`protperf.transfer.convert` run of ``checkpoint`` to ``kind`` at ``m``
    features, scored along the way; returns its callback (the curve)."""
    from protperf.transfer.converter import convert

    curve = CurveCallback(scored, [s for s in config.eval_steps if s <= config.steps])
    data = DataConfig(path=str(train_fasta), batch_size=config.batch_size, num_workers=0,
                      cache_dir=str(work_dir / "prepared"))
    # validation (on the fine-tune file's own split) only picks the step written, here the
    # last: two batches keep its cost out of the way; the curve is the callback's
    trainer = {"max_steps": config.steps, "val_check_interval": config.steps,
               "check_val_every_n_epoch": None, "limit_val_batches": 2, "callbacks": [curve]}
    convert(checkpoint, work_dir / f"{kind}-m{m}.ckpt", data,
            attention={"kind": kind, "num_features": m}, settings=settings, trainer=trainer,
            force=True)
    return curve


def curve_table(frame: pd.DataFrame, steps: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per converted (attention, m, recipe, set): the exact accuracy, then at each
    step the recovery in % and the CPU-minutes spent by then. ``frame``: the rows of one run
    (numbers or CSV text)."""
    exact = frame[(frame["stage"] == "zero-shot") & (frame["attention"] == "exact")]
    exact_accuracy = dict(zip(exact["set"], exact["accuracy"].astype(float), strict=True))
    tuned = frame[frame["stage"] == "convert"]
    out = []
    for (kind, m, recipe, name), group in tuned.groupby(
            ["attention", "m", "recipe", "set"], sort=False):
        cells = {"attention": f"{kind} m={m}", "recipe": recipe, "set": name,
                 "exact accuracy": f"{exact_accuracy[name]:.3f}"}
        for _, row in group.iterrows():
            step = int(row["step"])
            if steps is None or step in steps:
                cpu = float(row["cpu_s"]) / 60
                cells[f"step {step}"] = (f"{100 * float(row['recovery']):.1f} % "
                                         f"({cpu:.1f} min)")
        out.append(cells)
    return pd.DataFrame(out).fillna("")


def zero_shot_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per attention (and m) and set: zero-shot accuracy (median over feature seeds,
    range in brackets) and perplexity."""
    zero = frame[frame["stage"] == "zero-shot"]
    out = []
    for (kind, m, name), group in zero.groupby(["attention", "m", "set"], sort=False):
        accuracy = group["accuracy"].astype(float)
        out.append({"attention": kind if kind == "exact" else f"{kind} m={m}", "set": name,
                    "accuracy": f"{accuracy.median():.3f}" + (
                        f" ({accuracy.min():.3f}-{accuracy.max():.3f})" if len(group) > 1
                        else ""),
                    "perplexity": f"{group['perplexity'].astype(float).median():.2f}"})
    return pd.DataFrame(out)
