"""``protperf-score``: checkpoint + mutations CSV (+ wild-type FASTA) -> scores CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from protperf.checkpoint.atomic import atomic_path, check_writable
from protperf.cli.command import command
from protperf.cli.config import ScoreConfig
from protperf.data.fasta import read_fasta
from protperf.errors import ConfigError, InferenceInputError
from protperf.inference import load_model
from protperf.inference.mutations import read_variants
from protperf.inference.score import Scorer, spearman_by_method


def read_wildtype(path: str, record_id: str | None = None) -> str:
    """The residues of the one record of a FASTA file, or of record ``record_id``."""
    records = dict(read_fasta(path))
    if record_id is not None:
        if record_id not in records:
            raise InferenceInputError(
                f"{path}: no record with id wildtype_id={record_id!r} (ids: "
                f"{', '.join(list(records)[:5])}{', ...' if len(records) > 5 else ''})")
        residues = records[record_id]
    elif len(records) == 1:
        residues = next(iter(records.values()))
    elif not records:
        raise InferenceInputError(f"{path}: no FASTA record")
    else:
        raise InferenceInputError(
            f"{path}: {len(records)} records ({', '.join(list(records)[:3])}"
            f"{', ...' if len(records) > 3 else ''}); say which is the wild type with "
            "wildtype_id=<record id>")
    return residues.upper().removesuffix("*")  # a trailing stop codon


def score(config: ScoreConfig) -> pd.DataFrame:
    """Score every variant; writes the input table plus one column per score."""
    if config.wildtype_id is not None and not config.wildtype:
        raise ConfigError("wildtype_id is set but wildtype (the FASTA file) is not")
    wildtype = read_wildtype(config.wildtype, config.wildtype_id) if config.wildtype else None
    variants = read_variants(config.mutations, wildtype)
    check_writable(Path(config.output).parent, "scores")  # before the model loads
    model = load_model(config.checkpoint, config.device,
                       model_overrides=config.model.as_overrides())
    scorer = Scorer(model, config.batch_size, progress=config.progress)
    scores = scorer.score_variants(variants, config.methods)
    table = pd.concat([variants.table, scores], axis=1)
    with atomic_path(config.output, "scores") as partial:
        table.to_csv(partial, index=False)
    print(f"[protperf] scored {len(table)} variants ({', '.join(scores.columns)}) -> "
          f"{config.output}", flush=True)
    if "DMS_score" in variants.table.columns:
        rho = spearman_by_method(variants.table, scores)
        print("Spearman rho with DMS_score:")
        print(rho.round(4).to_string())
    return table


main = command("score")(score)
