"""Fault injection on the commands: export never deletes what it did not write; import leaves
no temporary after SIGTERM (and removes dead ones); import refuses weights its config does not
use; a full disk or a read-only folder is one line naming the path, exit 2, nothing
half-written, in embed, score, generate, export, import and collect_runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import protperf.app.embed
import protperf.app.generate
import protperf.app.score
import protperf.reporting.runs
from protperf.checkpoint import atomic
from protperf.checkpoint.atomic import host_tag
from protperf.checkpoint.writer import write_checkpoint
from protperf.cli import entries
from protperf.cli.compose import compose_config
from protperf.cli.runner import argparse_status
from protperf.inference.embed import Embedder
from tests.checkpoint.conftest import ENOSPC, raise_errno
from tests.checkpoint.test_atomic import dead_pid
from tests.inference.conftest import tiny_model

REPO = Path(__file__).resolve().parents[2]
WT = "MKTAYIAKQRQISFVKSHFSRQ"


@pytest.fixture
def checkpoints(tmp_path) -> dict[str, Path]:
    """A masked and a causal tiny model, written by the one checkpoint writer."""
    out = {}
    for objective in ("mlm", "clm"):
        network = tiny_model("exact", causal=objective == "clm", dtype=torch.float32,
                             weight_scale=1.0)
        out[objective] = write_checkpoint(network, network.config,
                                          tmp_path / "models" / f"{objective}.ckpt",
                                          task={"objective": objective})
    return out


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    (tmp_path / "wt.fasta").write_text(f">wt\n{WT}\n")
    (tmp_path / "variants.csv").write_text("mutant,DMS_score\nK2R,0.1\nT3A:Y5W,0.7\n")
    return {"wildtype": tmp_path / "wt.fasta", "mutations": tmp_path / "variants.csv"}


def hydra_command(name: str, overrides: list[str], capsys) -> str:
    """Run a Hydra command in-process; returns its one error line (exit status 2)."""
    main = getattr(protperf.app, name).main
    with pytest.raises(SystemExit) as status:
        main.run(compose_config(name, overrides))
    assert status.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def export_status(argv: list[str]) -> int:
    return argparse_status("protperf.app.export_model", argv)


def import_status(argv: list[str]) -> int:
    return argparse_status("protperf.app.import_model", argv)


def argparse_command(run, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as status:
        run(argv)
    assert status.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def command_overrides(name, checkpoints, inputs, out: Path) -> list[str]:
    return {
        "embed": [f"checkpoint={checkpoints['mlm']}", f"output_dir={out}", "progress=false"],
        "score": [f"checkpoint={checkpoints['mlm']}", f"mutations={inputs['mutations']}",
                  f"wildtype={inputs['wildtype']}", f"output={out / 'scores.csv'}",
                  "progress=false"],
        "generate": [f"checkpoint={checkpoints['clm']}", "num_samples=2", "max_length=12",
                     f"output={out / 'samples.fasta'}"],
    }[name]


WRITTEN = {"embed": "embeddings {out}/embeddings", "score": "scores {out}/scores.csv",
           "generate": "samples {out}/samples.fasta"}


# -- 1. export never deletes what it did not write -------------------------------------------
def test_export_into_an_earlier_export_needs_force_and_keeps_other_files(checkpoints, tmp_path,
                                                                         capsys):
    out = tmp_path / "exported"
    assert export_status([str(checkpoints["mlm"]), "--out", str(out)]) == 0
    (out / "notes.txt").write_text("my notes")
    (out / "other-model").mkdir()
    (out / "other-model" / "model.safetensors").write_bytes(b"another model")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    line = argparse_command(entries.export, [str(checkpoints["clm"]), "--out", str(out)], capsys)
    assert line == (f"error: --out {out} is an earlier export; pass --force to replace the files "
                    "an export writes there (other files are kept), or choose a new directory")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert export_status([str(checkpoints["clm"]), "--out", str(out), "--force"]) == 0
    assert json.loads((out / "config.json").read_text())["task"]["objective"] == "clm"
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "other-model" / "model.safetensors").read_bytes() == b"another model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported", "models"]


# -- 2. temporaries: SIGTERM during import, dead writers' leftovers ---------------------------
SLOW_IMPORT = """
import sys, time, torch
real_save = torch.save
def save_then_wait(obj, path, *args, **kwargs):
    real_save(obj, path, *args, **kwargs)
    print("written", flush=True)
    time.sleep(60)
torch.save = save_then_wait
from protperf.cli.entries import import_model
sys.argv = ["protperf-import", *sys.argv[1:]]
import_model()
"""


def test_sigterm_during_import_leaves_no_temporary(hf_esm_dirs, tmp_path):
    out = tmp_path / "esm.ckpt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_IMPORT, str(hf_esm_dirs["safetensors"]), "--out", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while (line := child.stdout.readline()) and line != "written\n":
        pass
    assert line == "written\n" and [p.name.startswith(".esm.ckpt.tmp-")
                                     for p in tmp_path.iterdir()] == [True]
    child.send_signal(signal.SIGTERM)
    child.wait(timeout=60)
    assert child.returncode == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []  # used to leave .esm.ckpt.tmp-PID


def test_import_removes_dead_writers_leftovers(hf_esm_dirs, tmp_path):
    out = tmp_path / "esm.ckpt"
    dead = dead_pid()
    stale = [tmp_path / f".esm.ckpt.tmp-{dead}", tmp_path / f".esm.ckpt.tmp-{host_tag()}-{dead}"]
    for path in stale:
        path.write_bytes(b"x" * 1000)
    assert import_status([str(hf_esm_dirs["safetensors"]), "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["esm.ckpt"]


# -- 3. import refuses weights its config does not use ---------------------------------------
def test_import_refuses_more_layers_than_the_config_says(hf_esm_dirs, tmp_path, capsys):
    source = tmp_path / "esm"
    source.mkdir()
    for path in hf_esm_dirs["safetensors"].iterdir():
        (source / path.name).write_bytes(path.read_bytes())
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 1}))
    out = tmp_path / "esm.ckpt"
    assert import_status([str(source), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"error: {source / 'model.safetensors'}: tensor "
        "'esm.encoder.layer.1.LayerNorm.bias' is not used: "
        "num_hidden_layers=1, weights for 2 layers (the config describes fewer blocks than the "
        "weights hold; fix the config)\n")
    assert not out.exists()


# -- 4. full disk / read-only ----------------------------------------------------------------
@pytest.mark.parametrize("name", ["embed", "score", "generate"])
def test_full_disk_in_inference_commands(name, checkpoints, inputs, tmp_path, monkeypatch,
                                         capsys):
    out = tmp_path / "out"
    monkeypatch.setattr(atomic, "fsync_path", raise_errno(ENOSPC))  # the disk fills up
    line = hydra_command(name, command_overrides(name, checkpoints, inputs, out), capsys)
    assert line == f"error: cannot write {WRITTEN[name].format(out=out)}: no space left on " \
                   "the device"
    assert not out.exists()  # nothing half-written, no temporary, no empty folder


@pytest.mark.parametrize("name", ["embed", "score", "generate"])
def test_read_only_folder_in_inference_commands(name, checkpoints, inputs, readonly_dir,
                                                monkeypatch, capsys):
    def compute(*args, **kwargs):
        raise AssertionError("computed before checking the output folder")

    monkeypatch.setattr(Embedder, "embed", compute)
    monkeypatch.setattr(protperf.app.score, "load_model", compute)
    monkeypatch.setattr(protperf.app.generate, "load_model", compute)
    out = readonly_dir
    line = hydra_command(name, command_overrides(name, checkpoints, inputs, out), capsys)
    what = WRITTEN[name].split()[0]
    assert line == f"error: cannot write {what} {out}: the file system is read-only"


def test_full_disk_and_read_only_in_export(checkpoints, tmp_path, monkeypatch, capsys):
    out = tmp_path / "exported"
    monkeypatch.setattr(atomic, "fsync_path", raise_errno(ENOSPC))
    line = argparse_command(entries.export, [str(checkpoints["mlm"]), "--out", str(out)], capsys)
    assert line == f"error: cannot write export directory {out}: no space left on the device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_export_and_import_into_a_read_only_folder(checkpoints, hf_esm_dirs, readonly_dir,
                                                   capsys):
    line = argparse_command(entries.export, [str(checkpoints["mlm"]), "--out",
                                             str(readonly_dir / "exported")], capsys)
    assert line == f"error: cannot write export directory {readonly_dir}: the file system is " \
                   "read-only"
    out = readonly_dir / "esm.ckpt"
    assert import_status([str(hf_esm_dirs["safetensors"]), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"error: cannot write checkpoint {readonly_dir}: the file "
                                       "system is read-only\n")


def test_full_disk_in_import_leaves_nothing(hf_esm_dirs, tiny_disk, capsys):
    out = tiny_disk / "esm.ckpt"
    assert import_status([str(hf_esm_dirs["safetensors"]), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: cannot write checkpoint {tiny_disk}")
    assert error.count("\n") == 1 and "Traceback" not in error
    assert list(tiny_disk.iterdir()) == []


def test_full_disk_in_collect_runs(tmp_path, monkeypatch, capsys):
    curves = pd.DataFrame({"run": ["a"], "step": [0], "split": ["train"], "acc": [0.5]})
    summary = pd.DataFrame({"run": ["a"], "overrides": [""]})
    monkeypatch.setattr(protperf.reporting.runs, "collect_runs", lambda path: (curves, summary))
    monkeypatch.setattr(atomic, "fsync_path", raise_errno(ENOSPC))
    out = tmp_path / "tables"
    assert argparse_status("protperf.app.collect_runs", [str(tmp_path), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"error: cannot write table {out / 'runs_curves.csv'}: "
                                       "no space left on the device\n")
    assert not out.exists()


def test_train_and_prepare_into_a_read_only_folder(readonly_dir, capsys):
    import protperf.app.train
    from protperf.data.preparation.pipeline import prepare
    from protperf.errors import DataError
    from protperf.resources import SAMPLE_FASTA
    from tests.model.conftest import compose_train

    with pytest.raises(SystemExit) as status:  # before any data or model is touched
        protperf.app.train.main.run(compose_train([], output_dir=readonly_dir / "run"))
    assert status.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: cannot write run directory {readonly_dir}/run: the file system is read-only")
    with pytest.raises(DataError, match=f"^{readonly_dir}.*: Read-only file system "
                                        rf"\(while preparing {readonly_dir}/prepared; nothing "
                                        r"was left there\)$"):
        prepare(SAMPLE_FASTA, readonly_dir / "prepared")
