"""embed / score / generate end to end on freshly trained tiny checkpoints, and their
one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import protperf.app.embed
import protperf.app.generate
import protperf.app.score
from protperf.app.embed import embed
from protperf.app.generate import generate
from protperf.app.score import score
from protperf.cli.compose import compose_config
from protperf.data.fasta import read_fasta
from protperf.inference.embed_io import load_means
from protperf.resources import SAMPLE_FASTA
from tests.inference.conftest import run_script

WT = "MKTAYIAKQRQISFVKSHFSRQ"


COMMANDS = {"embed": protperf.app.embed.main, "score": protperf.app.score.main,
            "generate": protperf.app.generate.main}


def _compose(name: str, overrides: list[str]):
    return compose_config(name, overrides)


@pytest.fixture
def variant_files(tmp_path):
    (tmp_path / "wt.fasta").write_text(f">wt\n{WT}\n")
    (tmp_path / "variants.csv").write_text(
        "mutant,DMS_score\nK2R,0.1\nT3A:Y5W,0.7\nQ9E,0.4\nS13A,0.2\n")
    return tmp_path / "variants.csv", tmp_path / "wt.fasta"


def test_embed_app_writes_chunks_and_index(trained_checkpoints, tmp_path, caplog):
    out = tmp_path / "emb"
    index_path = embed(_compose_object("embed", [
        f"checkpoint={trained_checkpoints['mlm']}", f"output_dir={out}", "proteins_per_file=500",
        "progress=false", "include=[mean,per_tok]"]))  # data.path: the bundled sample
    assert index_path == out / "embeddings" / "index.csv"
    index, means = load_means(out, 1)
    records = list(read_fasta(SAMPLE_FASTA))
    assert index["id"].tolist() == [r for r, _ in records]
    assert means.shape == (len(records), 16) and np.isfinite(means).all()
    assert index["file"].nunique() == -(-len(records) // 500)
    assert (index["embedded_length"] <= 62).all()  # max_position=64: cropped, as documented
    assert "embedded in part" in caplog.text


def test_score_app_mlm_and_clm(trained_checkpoints, variant_files, tmp_path, capsys):
    mutations, wildtype = variant_files
    for objective, columns in (("mlm", ["masked_marginal", "wt_marginal", "pll", "pseudo_ppl"]),
                               ("clm", ["llr", "log_likelihood", "perplexity"])):
        output = tmp_path / f"{objective}.csv"
        score(_compose_object("score", [
            f"checkpoint={trained_checkpoints[objective]}", f"mutations={mutations}",
            f"wildtype={wildtype}", f"output={output}"]))
        table = pd.read_csv(output)
        assert list(table.columns) == ["mutant", "DMS_score", *columns]
        assert table[columns].notna().all().all()
        printed = capsys.readouterr().out
        assert "Spearman rho with DMS_score" in printed
        assert all(column in printed for column in columns)


def test_generate_app_is_reproducible(trained_checkpoints, tmp_path):
    args = [f"checkpoint={trained_checkpoints['clm']}", "num_samples=5", "max_length=30",
            "seed=3", "prompt=MK", "top_k=10", "batch_size=2"]
    first = generate(_compose_object("generate", [*args, f"output={tmp_path / 'a.fasta'}"]))
    proteins = list(read_fasta(tmp_path / "a.fasta"))
    assert [r for r, _ in proteins] == [f"sample_{i}" for i in range(5)]
    assert [s for _, s in proteins] == first
    assert all(s.startswith("MK") and len(s) <= 30 for s in first)
    again = generate(_compose_object("generate", [*args, f"output={tmp_path / 'b.fasta'}"]))
    assert again == first  # same seed, same proteins


@pytest.mark.slow
def test_the_three_commands_as_scripts(trained_checkpoints, variant_files, tmp_path):
    mutations, wildtype = variant_files
    hydra_dir = f"hydra.run.dir={tmp_path / 'hydra'}"
    runs = {
        "embed.py": [f"checkpoint={trained_checkpoints['mlm']}",
                     f"data.path={SAMPLE_FASTA}",
                     f"output_dir={tmp_path / 'emb'}", "progress=false"],
        "score.py": [f"checkpoint={trained_checkpoints['mlm']}", f"mutations={mutations}",
                     f"wildtype={wildtype}", f"output={tmp_path / 'scores.csv'}"],
        "generate.py": [f"checkpoint={trained_checkpoints['clm']}", "num_samples=3",
                        "max_length=20", "seed=1", f"output={tmp_path / 'samples.fasta'}"],
    }
    for script, args in runs.items():
        result = run_script(script, [*args, hydra_dir], tmp_path)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "emb" / "embeddings" / "index.csv").is_file()
    assert len(pd.read_csv(tmp_path / "scores.csv")) == 4
    assert len(list(read_fasta(tmp_path / "samples.fasta"))) == 3
    bad = run_script("generate.py", [f"checkpoint={trained_checkpoints['mlm']}",
                                     f"output={tmp_path / 'x.fasta'}", hydra_dir], tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert "generate needs a causal one" in bad.stderr


def _compose_object(name, overrides):
    from omegaconf import OmegaConf

    return OmegaConf.to_object(_compose(name, overrides))


def _error_line(capsys, app, name, overrides) -> str:
    with pytest.raises(SystemExit) as exit_info:
        COMMANDS[name].run(_compose(name, overrides))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_errors_are_one_line(trained_checkpoints, variant_files, tmp_path, capsys):
    mutations, wildtype = variant_files
    err = _error_line(capsys, generate, "generate", [
        f"checkpoint={trained_checkpoints['mlm']}", f"output={tmp_path / 'x.fasta'}"])
    assert err.startswith("error: checkpoint ") and "generate needs a causal one" in err
    err = _error_line(capsys, embed, "embed", [
        f"checkpoint={tmp_path / 'missing.ckpt'}", f"output_dir={tmp_path}"])
    assert err == f"error: checkpoint {tmp_path / 'missing.ckpt'} does not exist"
    bad = tmp_path / "bad.csv"
    bad.write_text("mutant\nK2R\nA3G\n")
    err = _error_line(capsys, score, "score", [
        f"checkpoint={trained_checkpoints['mlm']}", f"mutations={bad}", f"wildtype={wildtype}",
        f"output={tmp_path / 's.csv'}"])
    assert err == (f"error: {bad}: line 3: mutant 'A3G': the wild type has 'T' at position 3, "
                   "not 'A'")
    bad.write_text("mutant\nK2R:x\n")
    err = _error_line(capsys, score, "score", [
        f"checkpoint={trained_checkpoints['clm']}", f"mutations={bad}", f"wildtype={wildtype}",
        f"output={tmp_path / 's.csv'}"])
    assert err.startswith(f"error: {bad}: line 2: mutant 'K2R:x': 'x' is not a substitution")
