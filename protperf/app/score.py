"""``protperf-score``: checkpoint + mutations CSV (+ wild-type FASTA) -> scores CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from protperf.cli.command import command
from protperf.cli.config import ScoreConfig
from protperf.data.fasta import read_fasta
from protperf.errors import InferenceInputError
from protperf.inference import load_model
from protperf.inference.mutations import read_variants
from protperf.inference.score import Scorer, spearman_by_method


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


main = command("score")(score)
