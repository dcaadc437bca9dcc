"""The transfer benchmark script on a tiny imported BERT, AntiBERTy's optional weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
import torch
from benchmark_log import PROVENANCE

from protperf.transfer import antiberty

REPO = Path(__file__).resolve().parents[2]
# AntiBERTy's vocabulary: five specials and the 20 amino acids
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"ACDEFGHIKLMNPQRSTVWY"]


@pytest.fixture(scope="module")
def tiny_bert_checkpoint(tmp_path_factory) -> Path:
    """A random BertForMaskedLM with AntiBERTy's vocabulary, imported by protperf.pretrained."""
    from transformers import BertConfig, BertForMaskedLM

    from protperf.pretrained.importer import import_pretrained

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=160, pad_token_id=0)
    directory = tmp_path_factory.mktemp("bert") / "tiny_antibody_bert"
    BertForMaskedLM(config).eval().save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    out = directory.parent / "tiny.ckpt"
    import_pretrained(directory, out)
    return out


def script_main():
    """``main`` of scripts/benchmark_transfer.py, run in this process (no interpreter start)."""
    spec = importlib.util.spec_from_file_location(
        "benchmark_transfer", REPO / "scripts" / "benchmark_transfer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_script_appends_zero_shot_and_convert_curve_rows_to_transfer_csv(
        tiny_bert_checkpoint, tmp_path):
    tracked = (REPO / "benchmarks" / "transfer.csv")
    before = tracked.read_bytes() if tracked.exists() else None
    args = ["--checkpoint", str(tiny_bert_checkpoint), "--kinds", "favor_softmax",
            "--num-features", "16", "--feature-seeds", "0", "1", "--test-sequences", "4",
            "--convert-kinds", "favor_relu", "--convert-features", "16", "--steps", "2",
            "--eval-steps", "0", "2", "--batch-size", "2", "--schedule", "cosine"]
    out = tmp_path / "out"
    scratch = tmp_path / "not" / "yet"  # made by the script
    assert script_main()([*args, "--out-dir", str(out), "--tmp-dir", str(scratch)]) == 0
    assert scratch.is_dir() and list(scratch.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "transfer.csv"]
    table = pd.read_csv(out / "transfer.csv", keep_default_na=False)
    assert list(table.columns[-len(PROVENANCE):]) == list(PROVENANCE)
    assert (table.args == " ".join(args)).all() and (table.model == "tiny").all()
    zero_shot = table[table.stage == "zero-shot"]
    assert list(zip(zero_shot.attention, zero_shot.feature_seed, zero_shot.set, strict=True)) == [
        ("exact", "", "test"), ("exact", "", "heldout"),
        ("favor_softmax", "0", "test"), ("favor_softmax", "0", "heldout"),
        ("favor_softmax", "1", "test"), ("favor_softmax", "1", "heldout")]
    assert (zero_shot[zero_shot.attention == "exact"].recovery == 1.0).all()
    curve = table[table.stage == "convert"]
    assert list(zip(curve.step, curve.set, strict=True)) == [
        (0, "test"), (0, "heldout"), (2, "test"), (2, "heldout")]
    assert (curve.recipe == "transfer qk_features lr=0.001 cosine warmup=10").all()
    assert float(curve.cpu_s.iloc[0]) == 0 and float(curve.cpu_s.iloc[-1]) > 0
    assert ((table.accuracy >= 0) & (table.accuracy <= 1)).all() and (table.perplexity > 1).all()
    assert (table.test_sequences == 4).all()
    readme = (out / "README.md").read_text()
    assert "## A pretrained protein masked LM as a Performer" in readme
    assert (tracked.read_bytes() if tracked.exists() else None) == before  # never the real log


def test_missing_weights_name_the_extra(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError) as error:
        antiberty.antiberty_files()
    assert str(error.value) == ("AntiBERTy's weights are not installed: pip install "
                                "'protperf[transfer]' (the antiberty==0.1.3 wheel ships them)")


def test_script_without_the_extra_says_so_in_one_line(monkeypatch, tmp_path, capsys):
    main = script_main()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert main(["--out-dir", str(tmp_path), "--tmp-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error == f"error: {antiberty.MISSING}\n"
    assert list(tmp_path.iterdir()) == []  # no CSV, no README, no import left behind


def test_a_tmp_dir_that_cannot_be_made_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert script_main()(["--out-dir", str(tmp_path / "out"),
                          "--tmp-dir", str(tmp_path / "file" / "tmp")]) == 2
    assert capsys.readouterr().err == (f"error: cannot make {tmp_path / 'file' / 'tmp'}: "
                                       "Not a directory\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_real_antiberty_imports_and_collapses_as_a_performer(tmp_path):
    pytest.importorskip("antiberty", reason="needs the transfer extra (antiberty==0.1.3)")
    from protperf.attention import AttentionConfig
    from protperf.inference import load_model
    from protperf.transfer.antibodies import TEST_FASTA, read_antibodies
    from protperf.transfer.benchmark import spread
    from protperf.transfer.conversion import with_attention
    from protperf.transfer.evaluation import masked_batches, masked_lm_score

    model = load_model(antiberty.import_antiberty(tmp_path / "antiberty.ckpt"))
    assert (model.config.num_layers, model.config.num_heads, model.config.dim) == (8, 8, 512)
    test = [s for _, s in read_antibodies(TEST_FASTA)]
    batches = masked_batches(spread(test, 16), seed=0)
    exact = masked_lm_score(model, batches)
    performer = masked_lm_score(
        with_attention(model, AttentionConfig(kind="favor_softmax", num_features=64)), batches)
    assert exact.accuracy > 0.75 and exact.perplexity < 3  # 0.84 / 2.0 on 32 sequences
    assert performer.accuracy < exact.accuracy - 0.2


def test_tables_take_medians_over_seeds_and_show_recovery_with_cpu_minutes():
    from protperf.transfer.benchmark import curve_table, zero_shot_table

    def row(stage, attention, m, seed, step, name, accuracy, recovery, cpu_s=""):
        return dict(stage=stage, attention=attention, m=m, feature_seed=seed, recipe="r",
                    step=step, set=name, accuracy=accuracy, perplexity=2.0, recovery=recovery,
                    cpu_s=cpu_s)

    frame = pd.DataFrame([
        row("zero-shot", "exact", "", "", 0, "test", 0.9, 1.0),
        *(row("zero-shot", "favor_relu", 64, s, 0, "test", a, a / 0.9)
          for s, a in ((0, 0.3), (1, 0.5), (2, 0.4))),
        row("convert", "favor_relu", 64, 0, 0, "test", 0.3, 0.3333, 0.0),
        row("convert", "favor_relu", 64, 0, 10, "test", 0.891, 0.99, 75.0),
    ]).astype(str)  # as read back from the CSV
    assert zero_shot_table(frame).to_dict("records") == [
        {"attention": "exact", "set": "test", "accuracy": "0.900", "perplexity": "2.00"},
        {"attention": "favor_relu m=64", "set": "test", "accuracy": "0.400 (0.300-0.500)",
         "perplexity": "2.00"}]
    assert curve_table(frame).to_dict("records") == [
        {"attention": "favor_relu m=64", "recipe": "r", "set": "test",
         "exact accuracy": "0.900", "step 0": "33.3 % (0.0 min)",
         "step 10": "99.0 % (1.2 min)"}]
