"""analyze_model + write_outputs on a tiny model: files, CSV, JSON, exclusions, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from protperf.analysis.config import AnalysisDataConfig, AnalyzeConfig
from protperf.analysis.pipeline import analyze_model, analyzed_model
from protperf.analysis.report import write_outputs
from protperf.analysis.summary import summary_line

from .test_collect import TinyModel

FASTA = """>P1 first
MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ
>P2 with non-standard letters
ACDXEFGBHIKZLMNUPQROSTVWY
>P3
GGWWCCAPGGWWCCAP
"""


def config(tmp_path: Path, path: Path, **overrides) -> AnalyzeConfig:
    data = AnalysisDataConfig(path=str(path), max_length=40, batch_size=2)
    values = dict(data=data, permutations=20, output_dir=str(tmp_path / "out"), progress=False,
                  grid_max_length=12, block_size=16,
                  methods=["similarity", "vig"],  # TinyModel has no token embedding
                  null_models=0)  # nor a ProteinLanguageModel architecture to re-initialise
    values.update(overrides)
    return AnalyzeConfig(**values)


@pytest.fixture
def fasta_path(tmp_path: Path) -> Path:
    path = tmp_path / "small.fasta"
    path.write_text(FASTA)
    return path


def test_analysis_writes_every_output(tmp_path, fasta_path):
    kind, causal = "favor_relu", True
    cfg = config(tmp_path, fasta_path, protein="P3")
    result = analyze_model(TinyModel(kind, causal), cfg)
    written = write_outputs(result, cfg)
    out = Path(cfg.output_dir)
    names = {str(p.relative_to(out)) for p in written}
    for stem in ("similarity_pooled", "similarity_best_head", "scatter_pooled", "head_correlations",
                 "vig_similarity", "vig_scatter", "attention_grid"):
        assert {f"figures/{stem}.png", f"figures/{stem}.svg"} <= names
    table = pd.read_csv(out / "head_correlations.csv")
    assert list(table["kind"].iloc[:3]) == ["pooled", "layer", "layer"]
    assert (table["kind"] == "head").sum() == 2 * 2
    assert {"pearson_offdiag", "spearman_full", "pearson_offdiag_p", "pearson_offdiag_q"} <= set(
        table.columns
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["stats"] == {"read": 3, "analyzed": 3, "truncated": 1,
                                        "residues_cropped": 66 - 38}
    tokens = summary["data"]["tokens"]
    assert tokens["nonstandard"] == {"X": 1, "B": 1, "Z": 1, "U": 1, "O": 1}
    assert tokens["special"]["<cls>"] == 3 and tokens["special"]["<eos>"] == 3
    assert summary["model"] == {"layers": 2, "heads": 2, "causal": causal, "attention": [kind]}
    assert summary["grid_protein"] == "P3"
    assert result.grid.shape == (2, 2, 12, 12)
    assert set(summary["vig"]) >= {"pearson_offdiag", "heads_used", "threshold"}


def test_methods_are_selectable(tmp_path, fasta_path):
    cfg = config(tmp_path, fasta_path, methods=["vig"])
    result = analyze_model(TinyModel("exact", False), cfg)
    assert result.head_table is None and result.vig_summary is not None
    assert "similarity" not in result.summary and "vig" in result.summary
    cfg = config(tmp_path, fasta_path, methods=["similarity"])
    result = analyze_model(TinyModel("exact", False), cfg)
    assert result.vig_summary is None and len(result.head_table) == 1 + 2 + 4


def test_invalid_residue_names_record_or_is_counted(tmp_path):
    path = tmp_path / "bad.fasta"
    path.write_text(">ok\nMKTAY\n>broken\nMK1AY\n")
    expected = r"bad.fasta: record broken: invalid residue .1. at position 2"
    with pytest.raises(ValueError, match=expected):
        analyze_model(TinyModel("exact", False), config(tmp_path, path))
    cfg = config(tmp_path, path)
    cfg.data.on_invalid = "skip"
    result = analyze_model(TinyModel("exact", False), cfg)
    assert result.summary["data"]["stats"]["skipped_invalid"] == 1
    assert result.summary["data"]["stats"]["analyzed"] == 1


def test_config_errors(tmp_path, fasta_path):
    with pytest.raises(ValueError, match=r"methods=\['blosum'\] must be a non-empty subset"):
        analyze_model(TinyModel("exact", False), config(tmp_path, fasta_path, methods=["blosum"]))
    with pytest.raises(ValueError, match="protein='nope' is not among the analyzed proteins"):
        analyze_model(TinyModel("exact", False), config(tmp_path, fasta_path, protein="nope"))


def test_analyzed_model_needs_an_existing_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="checkpoint is required: checkpoint=path/to/last.ckpt"):
        analyzed_model(AnalyzeConfig())
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        analyzed_model(AnalyzeConfig(checkpoint=str(tmp_path / "missing.ckpt")))


def test_window_mode_packs_proteins_for_performers(tmp_path, fasta_path):
    cfg = config(tmp_path, fasta_path, methods=["similarity"])
    cfg.data.window = 32
    result = analyze_model(TinyModel("favor_softmax", causal=True), cfg)
    data = result.summary["data"]
    assert data["tokens_per_row"] == 32 and data["stats"]["analyzed"] == 3
    residues = 66 + 25 + 16
    assert sum(data["tokens"]["standard"].values()) + 5 == residues  # nothing cropped
    assert data["tokens"]["special"]["<cls>"] == 3
    assert result.totals.tally.rows == -(-(residues + 6) // 32)  # rows of 32 tokens


def test_vig_without_enough_heads_is_skipped_with_one_line(tmp_path, fasta_path, caplog):
    cfg = config(tmp_path, fasta_path, vig_threshold=0.999)  # no weight is that high
    with caplog.at_level("WARNING", logger="protperf.analysis.pipeline"):
        result = analyze_model(TinyModel("exact", False), cfg)
    reason = result.summary["vig"]["skipped"]
    assert reason.startswith("skipped: 0 of 4 heads have attention weights above 0.999")
    assert [r.getMessage() for r in caplog.records] == [f"vig: {reason}"]
    names = {p.name for p in write_outputs(result, cfg)}
    assert "attention_grid.png" in names
    assert not {"vig_similarity.png", "vig_scatter.png"} & names
    assert "vig skipped (0 heads usable)" in summary_line(result, "out")
