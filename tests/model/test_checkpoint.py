"""Checkpoints: weights_only loading, mismatch errors, exact -> Performer transfer."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from protperf.app.evaluate import evaluate
from protperf.checkpoint.module import CheckpointMismatchError, load_module, read_checkpoint
from protperf.training import train
from tests.model.conftest import TINY, compose_evaluate, compose_train


@pytest.fixture(scope="module")
def exact_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("exact")
    train(compose_train(["model=transformer", "task=mlm"], output_dir=out))
    return out / "checkpoints" / "last.ckpt"


def test_checkpoint_is_plain_weights_only_data(exact_checkpoint):
    checkpoint = torch.load(exact_checkpoint, map_location="cpu", weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    assert hparams["alphabet"][:5] == ["<pad>", "<mask>", "<cls>", "<eos>", "<unk>"]
    assert hparams["model"]["attention"]["kind"] == "exact"
    assert isinstance(hparams["model"], dict)


def test_other_alphabet_fails_clearly(exact_checkpoint, tmp_path):
    checkpoint = torch.load(exact_checkpoint, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["alphabet"][5:7] = ["C", "A"]
    bad = tmp_path / "swapped.ckpt"
    torch.save(checkpoint, bad)
    with pytest.raises(CheckpointMismatchError,
                       match=r"different alphabet .*first difference at token id 5"):
        load_module(bad)


def test_other_architecture_fails_clearly(exact_checkpoint):
    with pytest.raises(CheckpointMismatchError, match=r"model.dim=16 in the checkpoint .* but 32"):
        load_module(exact_checkpoint, model_overrides={"dim": 32})


def test_resuming_into_other_architecture_fails_clearly(exact_checkpoint, tmp_path):
    with pytest.raises(CheckpointMismatchError, match=r"model.num_layers=1 in the checkpoint"):
        train(compose_train(["model=transformer", "model.num_layers=2", "trainer.max_steps=4",
                             f"ckpt_path={exact_checkpoint}"], output_dir=tmp_path))


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(CheckpointMismatchError, match="not a protperf training checkpoint"):
        read_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="missing.ckpt does not exist"):
        read_checkpoint(tmp_path / "missing.ckpt")


@pytest.mark.parametrize("kind", ["favor_softmax", "favor_relu"])
def test_exact_weights_load_as_performer(exact_checkpoint, kind):
    exact = load_module(exact_checkpoint).eval()
    performer = load_module(exact_checkpoint, model_overrides={"attention": {"kind": kind}})
    assert performer.model_config.attention.kind == kind
    exact_params = dict(exact.model.named_parameters())
    for name, param in performer.model.named_parameters():
        assert torch.equal(param, exact_params[name]), name
    ids = torch.randint(5, 25, (2, 16))
    with torch.no_grad():
        logits = performer.eval()(ids)
    assert logits.shape == (2, 16, 30) and torch.isfinite(logits).all()


def test_init_from_exact_then_train_as_performer(exact_checkpoint, tmp_path):
    summary = train(compose_train(["model=performer_relu", f"init_from={exact_checkpoint}"],
                                  output_dir=tmp_path))
    assert summary["attention"] == "favor_relu" and summary["step"] == 3


def test_init_from_an_export_directory(exact_checkpoint, tmp_path):
    from protperf import export_model

    directory = export_model(exact_checkpoint, tmp_path / "exported")
    summary = train(compose_train(["model=performer_relu", f"init_from={directory}",
                                   "trainer.max_steps=1"], output_dir=tmp_path / "run"))
    assert summary["attention"] == "favor_relu" and summary["step"] == 1
    table = evaluate(compose_evaluate(
        [f"checkpoints=[{directory}]", "model.attention.kind=favor_relu",
         *[o for o in TINY if o.startswith(("data.", "trainer.limit_test"))],
         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"],
        output_dir=tmp_path / "evaluate"))
    assert table["trained_attention"].tolist() == ["exact"]
    assert table["eval_attention"].tolist() == ["favor_relu"]


def test_evaluate_exact_as_performer_with_finetune(exact_checkpoint, tmp_path):
    """scripts/evaluate.py's config: two checkpoints -> table (CSV + markdown)."""
    table = evaluate(compose_evaluate(
        [f"checkpoints=[{exact_checkpoint},{exact_checkpoint}]", "model.attention.kind=favor_relu",
         "finetune.steps=2",
         *[o for o in TINY if o.startswith(("data.", "trainer.limit_test"))],
         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"],
        output_dir=tmp_path,
    ))
    saved = pd.read_csv(tmp_path / "evaluation.csv")
    assert len(saved) == 2 and list(saved.columns) == list(table.columns)
    assert set(saved["trained_attention"]) == {"exact"}
    assert set(saved["eval_attention"]) == {"favor_relu"}
    assert (saved["perplexity"] > 1).all() and (saved["accuracy_pct"] >= 0).all()
    assert (tmp_path / "evaluation.md").read_text().startswith("| checkpoint |")
    assert (tmp_path / "finetuned" / "last-finetuned.ckpt").is_file()
