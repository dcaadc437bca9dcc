"""protperf-convert as a user runs it: one error line and exit status 2 for bad input (nothing
written at the output), exact resume, sweeps, and ``train init_from=`` on the architecture
of the checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from protperf.checkpoint.imported import ImportedModel
from protperf.checkpoint.load import load_model, read_checkpoint
from protperf.checkpoint.writer import write_imported
from protperf.cli import entries
from protperf.data.config import DataConfig
from protperf.errors import ConfigError, DataError
from protperf.model.lightning import ProteinLMModule
from protperf.transfer.converter import plan_conversion
from tests.transfer.conftest import CONVERT_TINY, run_command, save_module, sharp_exact_config


def convert_error(args, tmp_path, monkeypatch, capsys) -> str:
    """The one error line of a conversion that must fail; checks that nothing was written."""
    code, err = run_command(entries.convert, [*CONVERT_TINY, "hydra.run.dir=run", *args],
                            tmp_path, monkeypatch, capsys)
    assert code == 2, err[-3000:]
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err[-3000:]
    assert not (tmp_path / "out.ckpt").exists() or "already exists" in lines[0]
    return lines[0]


def plan_error(tmp_path, source, **kwargs) -> str:
    """The message of a conversion :func:`plan_conversion` refuses (the command prints it as
    its one ``error:`` line, exit status 2: tested above for each kind of error)."""
    with pytest.raises((ConfigError, DataError)) as error:
        plan_conversion(source, tmp_path / "out.ckpt", **kwargs)
    assert not (tmp_path / "out.ckpt").exists()
    return str(error.value)


def test_performer_source_is_refused(tmp_path):
    config = sharp_exact_config()
    config.attention.kind = "favor_relu"
    source = save_module(ProteinLMModule(model=config, task={"objective": "mlm"}),
                         tmp_path / "performer.ckpt")
    assert plan_error(tmp_path, source) == (
        f"checkpoint={source} is already a Performer (model.attention.kind=favor_relu); "
        "convert takes an exact-attention model")


def test_objective_must_be_the_sources(exact_sources, tmp_path, monkeypatch, capsys):
    clm, mlm = exact_sources["clm"], exact_sources["mlm"]
    line = convert_error([f"checkpoint={clm}", "output=out.ckpt", "data.mask_prob=0.2"],
                         tmp_path, monkeypatch, capsys)
    assert line == (f"error: data.mask_prob is a masked-LM setting but checkpoint={clm} is a "
                    "causal (clm) model: its data are next-token batches")
    assert plan_error(tmp_path, mlm, objective="clm") == (
        f"objective=clm does not fit checkpoint={mlm}, a masked (mlm) model: a conversion "
        "keeps the source's objective")


def test_letters_the_source_lacks_are_refused(tmp_path):
    torch.manual_seed(0)
    module = ProteinLMModule(model=sharp_exact_config(), task={"objective": "mlm"})
    source = tmp_path / "no_x.ckpt"
    write_imported(ImportedModel(sharp_exact_config(), module.model.state_dict(), "hf-bert",
                                 "tiny-bert", unpredicted_tokens=["X", "<sep>"]), source)
    records = [f">r{i}\n{'ACDEFGHIKLMNPQRSTVWY' * 2}\n" for i in range(40)]
    records[7] = ">r7 with an unknown residue\nACDEFGXIKL\n"
    (tmp_path / "letters.fasta").write_text("".join(records))
    fasta = tmp_path / "letters.fasta"
    data = DataConfig(path=str(fasta), cache_dir=str(tmp_path / "cache"))
    assert plan_error(tmp_path, source, data=data) == (
        f"data.path={fasta}: record r7 has the letter X, which the vocabulary of "
        f"checkpoint={source} lacks (it lacks X): remove those records or replace the letter")


def test_bad_settings_and_names(exact_sources, tmp_path, monkeypatch, capsys):
    mlm = exact_sources["mlm"]
    assert plan_error(tmp_path, mlm, attention={"num_features": 0}) == (
        "model.attention.num_features=0 must be >= 1")
    name = "facebook/esm2_t6_8M_UR50D"
    line = convert_error([f"checkpoint={name}", "output=out.ckpt"], tmp_path, monkeypatch,
                         capsys)
    assert line == (f"error: checkpoint={name} is neither a checkpoint file nor an export "
                    f"directory here; a pretrained model is imported first (protperf-import "
                    f"{name} --out esm2_t6_8M_UR50D.ckpt), then converted")
    (tmp_path / "out.ckpt").write_bytes(b"keep me")
    line = convert_error([f"checkpoint={mlm}", "output=out.ckpt"], tmp_path, monkeypatch, capsys)
    assert line == "error: output=out.ckpt already exists (force=true replaces it)"
    assert (tmp_path / "out.ckpt").read_bytes() == b"keep me"


@pytest.mark.slow
def test_resume_continues_exactly(exact_sources, tmp_path, monkeypatch, capsys):
    """4 steps at once == a run stopped by SLURM's signal after step 2 (no output written),
    then resumed (ckpt_path=last): the same weights, metrics, best step and scores."""
    common = [*CONVERT_TINY, f"checkpoint={exact_sources['mlm']}", "convert.target_recovery=null"]
    code, err = run_command(entries.convert, [*common, "output=once.ckpt", "hydra.run.dir=once"],
                            tmp_path, monkeypatch, capsys)
    assert code == 0, err[-3000:]
    stop = ["+callbacks.stop._target_=tests.transfer.conftest.SignalAtStep",
            "+callbacks.stop.step=2"]
    code, err = run_command(entries.convert, [*common, "output=twice.ckpt", "hydra.run.dir=two",
                                              *stop], tmp_path, monkeypatch, capsys)
    assert code == 0, err[-3000:]
    assert "stopped by SIGUSR1 at step 3" in capsys.readouterr().out
    assert not (tmp_path / "twice.ckpt").exists()
    code, err = run_command(entries.convert, [*common, "output=twice.ckpt", "hydra.run.dir=two",
                                              "ckpt_path=last"], tmp_path, monkeypatch, capsys)
    assert code == 0, err[-3000:]
    once, twice = (read_checkpoint(tmp_path / run / "checkpoints" / "last.ckpt")
                   for run in ("once", "two"))
    assert once["global_step"] == twice["global_step"] == 4
    for name, tensor in once["state_dict"].items():
        assert torch.equal(tensor, twice["state_dict"][name]), name
    summaries = [json.loads((tmp_path / run / "summary.json").read_text())
                 for run in ("once", "two")]
    for key in ("steps", "exact", "zero_shot", "recovery"):
        assert summaries[0][key] == summaries[1][key], key
    assert summaries[0]["best"]["accuracy"] == summaries[1]["best"]["accuracy"]
    for name, tensor in load_model(tmp_path / "once.ckpt").state_dict().items():
        assert torch.equal(tensor, load_model(tmp_path / "twice.ckpt").state_dict()[name]), name
    once_csv, two_csv = ((tmp_path / run / "csv" / "metrics.csv").read_text()
                         for run in ("once", "two"))
    assert "train/loss" in once_csv.splitlines()[0]
    assert two_csv == once_csv  # the resumed run's metrics continue the first part's


def test_summary_line_and_outputs(exact_sources, tmp_path, monkeypatch, capsys):
    code, err = run_command(entries.convert, [*CONVERT_TINY, f"checkpoint={exact_sources['mlm']}",
                                              "output=out.ckpt", "hydra.run.dir=run"],
                            tmp_path, monkeypatch, capsys)
    assert code == 0, err[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    line = capsys.readouterr().out.strip().splitlines()[-1]
    best, exact = summary["best"], summary["exact"]
    assert line == (f"recovered {100 * summary['recovery']:.1f} % of exact accuracy "
                    f"({best['accuracy']:.3f} / {exact['accuracy']:.3f}) in {best['step']} "
                    f"steps, {best['cpu_s'] / 60:.1f} CPU-min -> out.ckpt")
    assert summary["output"] == "out.ckpt" and summary["steps"] in (2, 4)
    assert 0 < summary["exact"]["accuracy"] <= 1
    assert summary["recovery"] == pytest.approx(
        summary["best"]["accuracy"] / summary["exact"]["accuracy"])
    header = (tmp_path / "run" / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val/acc", "val/exact_acc", "val/recovery", "val/ppl", "train/loss"} <= set(header)


def test_init_from_takes_the_architecture_of_the_checkpoint(exact_sources, tmp_path,
                                                             monkeypatch, capsys):
    """Only the typed model keys differ from the checkpoint's (dim 32, 2 layers, exact)."""
    args = ["model.attention.kind=favor_relu", "model.attention.num_features=8",
            f"init_from={exact_sources['mlm']}", "data.max_length=48", "data.num_workers=0",
            "trainer.max_steps=1", "trainer.val_check_interval=1", "trainer.limit_val_batches=1",
            "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
            "trainer.enable_model_summary=false", "hydra.run.dir=run"]
    code, err = run_command(entries.train, args, tmp_path, monkeypatch, capsys)
    assert code == 0, err[-3000:]
    model = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")[
        "hyper_parameters"]["model"]
    assert (model["dim"], model["num_layers"], model["ffn_dim"]) == (32, 2, 64)
    assert model["attention"]["kind"] == "favor_relu"
    assert model["attention"]["num_features"] == 8


@pytest.mark.slow
def test_output_is_taken_by_evaluate_embed_export_and_train(exact_sources, tmp_path,
                                                            monkeypatch, capsys):
    from protperf import export_model

    code, err = run_command(entries.convert, [
        *CONVERT_TINY, f"checkpoint={exact_sources['mlm']}", "output=out.ckpt",
        "trainer.max_steps=2", "hydra.run.dir=run"], tmp_path, monkeypatch, capsys)
    assert code == 0, err[-3000:]
    out = tmp_path / "out.ckpt"
    (tmp_path / "few.fasta").write_text(">a\nMKTAYIAKQR\n>b\nGSHMLEDPVA\n")
    quiet = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
             "data.max_length=48", "data.num_workers=0", "trainer.limit_test_batches=2"]
    for entry, args in [
        (entries.evaluate, [f"checkpoints=[{out}]", *quiet, "hydra.run.dir=evaluate"]),
        (entries.embed, [f"checkpoint={out}", "data.path=few.fasta", "output_dir=emb",
                         "progress=false", "hydra.run.dir=embed"]),
        (entries.train, [f"init_from={out}", *quiet, "trainer.max_steps=1",
                         "trainer.val_check_interval=1", "trainer.limit_val_batches=1",
                         "~callbacks.progress_bar", "hydra.run.dir=train"]),
    ]:
        code, err = run_command(entry, args, tmp_path, monkeypatch, capsys)
        assert code == 0, err[-3000:]
    table = (tmp_path / "evaluate" / "evaluation.csv").read_text()
    assert "favor_softmax" in table
    assert list((tmp_path / "emb").iterdir())
    trained = read_checkpoint(tmp_path / "train" / "checkpoints" / "last.ckpt")
    assert trained["hyper_parameters"]["model"]["attention"] == read_checkpoint(out)[
        "hyper_parameters"]["model"]["attention"]  # the converted Performer, trained on
    exported = export_model(out, tmp_path / "exported")
    ids = torch.randint(4, 24, (1, 9))
    with torch.no_grad():
        assert torch.equal(load_model(exported)(ids), load_model(out)(ids))


@pytest.mark.slow
def test_sweep_over_kinds(exact_sources, tmp_path, monkeypatch, capsys):
    code, err = run_command(entries.convert, [
        "-m", *CONVERT_TINY, f"checkpoint={exact_sources['mlm']}", "trainer.max_steps=2",
        "model.attention.kind=favor_softmax,favor_relu",
        "output=out_${model.attention.kind}.ckpt", "hydra.sweep.dir=sweep"],
        tmp_path, monkeypatch, capsys)
    assert code == 0, err[-3000:]
    for kind in ("favor_softmax", "favor_relu"):
        assert load_model(tmp_path / f"out_{kind}.ckpt").config.attention.kind == kind
    runs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if (p / "summary.json").is_file())
    assert runs == ["0_convert-favor_softmax-m16", "1_convert-favor_relu-m16"]
