"""``protperf-score``: checkpoint + mutations CSV (+ wild-type FASTA) -> scores CSV."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import MISSING

from protperf.app.inference_common import inference_command
from protperf.data.fasta import read_fasta
from protperf.errors import InferenceInputError
from protperf.inference import load_model
from protperf.inference.mutations import read_variants
from protperf.inference.score import Scorer, spearman_by_method
from protperf.model.overrides import ModelOverrides


@dataclass
class ScoreConfig:
    """Root of ``protperf/conf/score.yaml``; methods None = all of the checkpoint's objective."""

    checkpoint: str = MISSING  # a .ckpt file or an export directory (protperf-export)
    model: ModelOverrides = field(default_factory=ModelOverrides)  # e.g. model.attention.kind
    mutations: str = MISSING
    wildtype: str | None = None  # FASTA (first record), or use a mutated_sequence column
    output: str = MISSING
    methods: list[str] | None = None  # mlm: masked_marginal, wt_marginal, pll; clm: llr, ...
    batch_size: int = 32
    device: str = "cpu"
    run_name: str = "score"


def read_wildtype(path: str) -> str:
    """The residues of the first record of a FASTA file."""
    record = next(iter(read_fasta(path)), None)
    if record is None:
        raise InferenceInputError(f"{path}: no FASTA record")
    return record[1].upper().removesuffix("*")  # a trailing stop codon


def score(config: ScoreConfig) -> pd.DataFrame:
    """Score every variant; writes the input table plus one column per score."""
    wildtype = read_wildtype(config.wildtype) if config.wildtype else None
    variants = read_variants(config.mutations, wildtype)
    model = load_model(config.checkpoint, config.device,
                       model_overrides=config.model.as_overrides())
    scores = Scorer(model, config.batch_size).score_variants(variants, config.methods)
    table = pd.concat([variants.table, scores], axis=1)
    Path(config.output).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(config.output, index=False)
    print(f"[protperf] scored {len(table)} variants ({', '.join(scores.columns)}) -> "
          f"{config.output}", flush=True)
    if "DMS_score" in variants.table.columns:
        rho = spearman_by_method(variants.table, scores)
        print("Spearman rho with DMS_score:")
        print(rho.round(4).to_string())
    return table


main = inference_command("score", score, ScoreConfig)
