"""The transfer benchmark: a pretrained masked LM run with FAVOR+ before and after recovery.

Rows (``benchmarks/transfer.csv`` through ``scripts/benchmark_transfer.py``):

- ``stage=zero-shot``: the weights as they are, exact attention and every Performer kind x m x
  feature seed, scored on the same masked test batches;
- ``stage=finetune``: the learning curve of each recipe (``mlm``, ``transfer``;
  :mod:`protperf.transfer.finetune`) for each fine-tuned kind at one m and feature seed, one
  row per evaluation (``step`` 0 is the zero-shot score of that model).

Scores (:mod:`protperf.transfer.evaluation`): accuracy and perplexity of the masked residues
over the 20 amino acids.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from protperf.attention import AttentionConfig
from protperf.model.transformer import ProteinLanguageModel
from protperf.transfer.conversion import with_attention
from protperf.transfer.evaluation import masked_batches, masked_lm_score
from protperf.transfer.finetune import RecoveryConfig, finetune


@dataclass
class TransferBenchmarkConfig:
    """What the benchmark measures (the script's options).

    kinds / num_features / feature_seeds: the zero-shot grid; test_sequences: how many test
    sequences are scored (evenly spread over the test file); mask_seed: the masks;
    finetune_kinds at finetune_features (feature seed 0) are trained with every recipe of
    ``recipes`` for ``steps`` steps of ``batch_size`` sequences, scored every ``eval_every``.
    """

    kinds: tuple[str, ...] = ("favor_softmax", "favor_relu")
    num_features: tuple[int, ...] = (64, 256, 1024)
    feature_seeds: tuple[int, ...] = (0, 1, 2)
    test_sequences: int = 64
    mask_seed: int = 0
    eval_batch_size: int = 16
    finetune_kinds: tuple[str, ...] = ("favor_softmax", "favor_relu")
    finetune_features: int = 256
    recipes: tuple[str, ...] = ("mlm", "transfer")
    steps: int = 100
    batch_size: int = 4
    eval_every: int = 25


def spread(items: Sequence, count: int) -> list:
    """``count`` items evenly spaced over ``items`` (all of them if fewer)."""
    if count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def run_benchmark(
    teacher: ProteinLanguageModel,
    train_sequences: Sequence[str],
    test_sequences: Sequence[str],
    config: TransferBenchmarkConfig,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Every row of the benchmark for the exact-attention model ``teacher`` (unchanged)."""
    teacher = with_attention(teacher, AttentionConfig(kind="exact"))
    tested = spread(test_sequences, config.test_sequences)
    batches = masked_batches(tested, config.mask_seed, config.eval_batch_size)
    common = {"test_sequences": len(tested), "masked_tokens": 0}
    rows: list[dict] = []

    def add(stage: str, kind: str, m: int | str, seed: int | str, recipe: str, step: int,
            accuracy: float, perplexity: float, train_loss: float | str = "",
            train_s: float | str = "", eval_s: float | str = "") -> None:
        rows.append({"stage": stage, "attention": kind, "m": m, "feature_seed": seed,
                     "recipe": recipe, "step": step, "accuracy": round(accuracy, 4),
                     "perplexity": round(perplexity, 3), "train_loss": train_loss,
                     "train_s": train_s, "eval_s": eval_s, **common})
        log(f"{stage} {kind} m={m} seed={seed} {recipe} step={step}: "
            f"acc={accuracy:.4f} ppl={perplexity:.3f}")

    start = time.perf_counter()
    exact = masked_lm_score(teacher, batches)
    common["masked_tokens"] = exact.tokens
    add("zero-shot", "exact", "", "", "", 0, exact.accuracy, exact.perplexity,
        eval_s=round(time.perf_counter() - start, 1))
    for kind in config.kinds:
        for m in config.num_features:
            for seed in config.feature_seeds:
                start = time.perf_counter()
                student = with_attention(teacher, AttentionConfig(kind=kind, num_features=m),
                                         seed)
                score = masked_lm_score(student, batches)
                add("zero-shot", kind, m, seed, "", 0, score.accuracy, score.perplexity,
                    eval_s=round(time.perf_counter() - start, 1))
    for kind in config.finetune_kinds:
        for recipe in config.recipes:
            student = with_attention(
                teacher, AttentionConfig(kind=kind, num_features=config.finetune_features), 0)
            recipe_config = RecoveryConfig(recipe=recipe, steps=config.steps,
                                           batch_size=config.batch_size,
                                           eval_every=config.eval_every)
            curve = finetune(student, teacher, train_sequences, batches, recipe_config)
            for point in curve:
                add("finetune", kind, config.finetune_features, 0, recipe, point.step,
                    point.accuracy, point.perplexity,
                    "" if point.step == 0 else round(point.train_loss, 4),
                    round(point.train_s, 1))
    return pd.DataFrame(rows)




def headline_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per attention (and m): zero-shot accuracy and perplexity (median over feature
    seeds, accuracy range in brackets), then for each fine-tuned recipe the accuracy and
    perplexity at its last step. ``frame``: the rows of one run (numbers or CSV text)."""
    zero = frame[frame["stage"] == "zero-shot"]
    tuned = frame[frame["stage"] == "finetune"]
    out = []
    for (kind, m), group in zero.groupby(["attention", "m"], sort=False):
        accuracy = group["accuracy"].astype(float)
        cells = {"attention": kind if kind == "exact" else f"{kind} m={m}",
                 "zero-shot accuracy": f"{accuracy.median():.3f}" + (
                     f" ({accuracy.min():.3f}-{accuracy.max():.3f})" if len(group) > 1 else ""),
                 "zero-shot perplexity": f"{group['perplexity'].astype(float).median():.2f}"}
        for recipe, curve in tuned[(tuned["attention"] == kind)
                                   & (tuned["m"].astype(str) == str(m))].groupby(
                                       "recipe", sort=False):
            last = curve.loc[curve["step"].astype(int).idxmax()]
            cells[f"{recipe} @{int(last['step'])} steps"] = (
                f"{float(last['accuracy']):.3f} / {float(last['perplexity']):.2f}")
        out.append(cells)
    return pd.DataFrame(out).fillna("")
