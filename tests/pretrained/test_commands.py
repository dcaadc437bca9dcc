"""An imported checkpoint is an ordinary one: evaluate, analyze, embed, score and
``train init_from=`` take it unchanged, and the ``model.attention.*`` overrides run it as a
Performer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from protperf.analysis.pipeline import analyze_model, analyzed_model
from protperf.app.embed import embed
from protperf.app.evaluate import evaluate
from protperf.app.score import score
from protperf.checkpoint.load import read_checkpoint
from protperf.checkpoint.module import load_module
from protperf.cli import entries
from protperf.cli.compose import compose_config
from protperf.cli.registry import load_config
from protperf.inference.embed_io import load_means
from protperf.pretrained import import_pretrained
from tests.model.conftest import compose_evaluate
from tests.pretrained.conftest import PROTEINS
from tests.transfer.conftest import run_command

PERFORMER = ["model.attention.kind=favor_softmax", "model.attention.num_features=32"]


@pytest.fixture(scope="module")
def imported(fair_esm_file, bert_dir, tmp_path_factory):
    """An ESM-2 (fair-esm file) and a BERT (HF directory), imported once."""
    root = tmp_path_factory.mktemp("imported")
    return {
        "esm": (root / "esm.ckpt", import_pretrained(fair_esm_file[0], root / "esm.ckpt")),
        "bert": (root / "bert.ckpt", import_pretrained(bert_dir, root / "bert.ckpt")),
    }


def typed(name, overrides):
    return load_config(name, compose_config(name, overrides))


@pytest.mark.parametrize("kind", ["favor_softmax", "favor_relu"])
def test_overrides_run_the_same_weights_as_a_performer(imported, kind):
    path, _ = imported["esm"]
    exact = load_module(path).eval()
    performer = load_module(path, model_overrides={"attention": {"kind": kind,
                                                                 "num_features": 32}}).eval()
    assert performer.model_config.attention.kind == kind
    assert performer.model_config.token_dropout and performer.model_config.lm_head_transform
    exact_params = dict(exact.model.named_parameters())
    for name, param in performer.model.named_parameters():
        assert torch.equal(param, exact_params[name]), name
    ids = torch.randint(5, 25, (2, 16))
    with torch.no_grad():
        logits = performer(ids)
    assert torch.isfinite(logits).all() and not torch.allclose(logits, exact(ids))


def test_evaluate_as_performer(imported, tmp_path):
    path, _ = imported["bert"]
    evaluate(compose_evaluate(
        [f"checkpoints=[{path}]", *PERFORMER, "data.max_length=32", "data.batch_size=4",
         "data.num_workers=0", "trainer.limit_test_batches=2",
         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"],
        output_dir=tmp_path))
    saved = pd.read_csv(tmp_path / "evaluation.csv")
    assert saved["trained_attention"].tolist() == ["exact"]
    assert saved["eval_attention"].tolist() == ["favor_softmax"]
    assert np.isfinite(saved["perplexity"]).all()


@pytest.mark.parametrize("source", ["esm", "bert"])
def test_the_printed_fine_tune_line_runs_on_the_checkpoint_architecture(
        imported, source, tmp_path, monkeypatch, capsys, caplog):
    """The import's last line, ``protperf-train init_from=OUT``, as typed: no model keys, the
    architecture comes from the checkpoint (plus the Performer keys a user adds)."""
    path, result = imported[source]
    with caplog.at_level("INFO", logger="protperf.pretrained.importer"):
        import_pretrained(result.source, tmp_path / "again.ckpt")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[-1] == f"fine-tune with: protperf-train init_from={tmp_path / 'again.ckpt'}"
    assert lines[-2] == (f"as a Performer: protperf-convert checkpoint={tmp_path / 'again.ckpt'}"
                         " output=PERFORMER.ckpt data.path=YOUR.fasta")
    quiet = ["data.max_length=32", "data.batch_size=4", "data.num_workers=0",
             "trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
             "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
             "trainer.enable_model_summary=false", "hydra.run.dir=run"]
    code, err = run_command(entries.train, [f"init_from={path}", *PERFORMER, *quiet], tmp_path,
                            monkeypatch, capsys)
    assert code == 0, err[-3000:]
    model = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")[
        "hyper_parameters"]["model"]
    assert (model["dim"], model["num_layers"]) == (result.config.dim, result.config.num_layers)
    assert model["attention"]["kind"] == "favor_softmax"


def test_embed_and_score(imported, tmp_path, capsys):
    path, _ = imported["esm"]
    fasta = tmp_path / "proteins.fasta"
    fasta.write_text("".join(f">p{i}\n{p}\n" for i, p in enumerate(PROTEINS)))
    embed(typed("embed", [f"checkpoint={path}", f"data.path={fasta}",
                          f"output_dir={tmp_path / 'emb'}", "progress=false", "layers=[0,-1]"]))
    index, means = load_means(tmp_path / "emb", 2)
    assert index["id"].tolist() == ["p0", "p1", "p2"]
    assert means.shape == (3, 32) and np.isfinite(means).all()
    (tmp_path / "wt.fasta").write_text(">wt\nMKTAYIAKQRQISFVKSHFSRQ\n")
    (tmp_path / "variants.csv").write_text("mutant,DMS_score\nK2R,0.1\nT3A:Y5W,0.7\nQ9E,0.4\n")
    score(typed("score", [f"checkpoint={path}", f"mutations={tmp_path / 'variants.csv'}",
                          f"wildtype={tmp_path / 'wt.fasta'}", f"output={tmp_path / 's.csv'}"]))
    table = pd.read_csv(tmp_path / "s.csv")
    assert table["masked_marginal"].notna().all()


def test_analyze_as_performer(imported, tmp_path):
    path, result = imported["bert"]
    config = typed("analyze", [
        f"checkpoint={path}", "model.attention.kind=favor_relu", "data.max_sequences=4",
        "data.max_length=36", "permutations=5", "grid_max_length=10", "figures=false",
        f"output_dir={tmp_path}"])
    analysis = analyze_model(analyzed_model(config), config)
    heads = analysis.head_table[analysis.head_table["kind"] == "head"]
    assert len(heads) == result.config.num_layers * result.config.num_heads
    assert analysis.summary["model"]["attention"] == ["favor_relu"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["attention_heads.ipynb", "blosum_similarity.ipynb"])
def test_the_heads_notebooks_analyze_an_imported_model(imported, name, tmp_path, monkeypatch):
    """The notebooks' checkpoint variable (PROTPERF_CHECKPOINT) takes an imported ESM-2."""
    from tests.analysis.test_notebooks import REPO, execute, images_per_cell

    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("PROTPERF_NOTEBOOK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("PROTPERF_CHECKPOINT", str(imported["esm"][0]))
    notebook = execute(name, tmp_path)
    assert sum(images_per_cell(notebook)) >= 1
    assert not (tmp_path / "work" / "tiny-heads-model").exists()
    assert not (tmp_path / "work" / "tiny-blosum-model").exists()
