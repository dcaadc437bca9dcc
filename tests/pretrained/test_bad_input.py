"""Sources that cannot be imported: one line naming the file / tensor, exit 2, no traceback,
nothing at OUT. A weight file with pickled code is refused before any of it runs."""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from protperf.cli.runner import argparse_status

REPO = Path(__file__).resolve().parents[2]


def import_status(argv: list[str]) -> int:
    """The exit status of ``protperf-import ARGV``, in-process."""
    return argparse_status("protperf.app.import_model", argv)


class WritesAFile:
    """Unpickling this calls open(path, "w"): code that runs when the file is loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def run_import(source, out, capsys, *extra) -> str:
    """``protperf-import SOURCE --out OUT`` in-process: the one error line (exit 2, OUT absent)."""
    assert import_status([str(source), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))
    return err[0]


def copy_dir(directory: Path, tmp_path: Path) -> Path:
    copy = tmp_path / directory.name
    shutil.copytree(directory, copy)
    return copy


def edit_config(directory: Path, **changes) -> None:
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    """Through the command in a subprocess: a fair-esm-looking .pt whose unpickling would
    write a file. The file is not written; the error names what it refers to."""
    marker = tmp_path / "pwned"
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(WritesAFile(proof)))  # the payload is live outside safe loading
    assert proof.exists()
    path = tmp_path / "esm2_evil.pt"
    torch.save({"model": {}, "cfg": {"model": WritesAFile(marker)}}, path)
    out = tmp_path / "out.ckpt"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "import_model.py"), str(path), "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 2
    assert not marker.exists() and not out.exists()
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: {path} holds pickled Python code, which safe loading "
                     "(weights_only=True) refuses: it refers to io.open; protperf reads "
                     "only tensors, plain containers and argparse.Namespace (convert the "
                     "trusted file to safetensors)"]


def test_pickled_code_in_an_hf_bin_is_refused(bert_bin_dir, tmp_path, capsys):
    directory = copy_dir(bert_bin_dir, tmp_path)
    marker = tmp_path / "pwned"
    state = torch.load(directory / "pytorch_model.bin", weights_only=True)
    torch.save({**state, "extra": WritesAFile(marker)}, directory / "pytorch_model.bin")
    line = run_import(directory, tmp_path / "out.ckpt", capsys)
    assert "holds pickled Python code" in line and "io.open" in line
    assert not marker.exists()


def test_unknown_model_type(bert_dir, tmp_path, capsys):
    directory = copy_dir(bert_dir, tmp_path)
    edit_config(directory, model_type="roberta")
    assert run_import(directory, tmp_path / "out.ckpt", capsys) == (
        f"error: {directory / 'config.json'} has model_type='roberta'; protperf imports "
        "model_type 'esm' or 'bert' (a fair-esm ESM-2 .pt file, an HF EsmForMaskedLM directory "
        "or an HF BERT-family masked-LM directory)")


def test_esm_architecture_that_is_not_a_masked_lm(hf_esm_dirs, tmp_path, capsys):
    directory = copy_dir(hf_esm_dirs["safetensors"], tmp_path)
    edit_config(directory, architectures=["EsmForSequenceClassification"])
    assert run_import(directory, tmp_path / "out.ckpt", capsys) == (
        f"error: {directory / 'config.json'} describes EsmForSequenceClassification, not a "
        "masked LM; protperf imports EsmForMaskedLM directories")


def test_directory_without_weights(bert_dir, tmp_path, capsys):
    directory = copy_dir(bert_dir, tmp_path)
    (directory / "model.safetensors").unlink()
    assert run_import(directory, tmp_path / "out.ckpt", capsys) == (
        f"error: {directory} holds no weights (expected model.safetensors or "
        "pytorch_model.bin, or a sharded *.index.json)")


def test_tensor_of_the_wrong_shape_is_named(bert_dir, tmp_path, capsys):
    directory = copy_dir(bert_dir, tmp_path)
    edit_config(directory, intermediate_size=48)
    assert run_import(directory, tmp_path / "out.ckpt", capsys) == (
        f"error: tensor 'bert.encoder.layer.0.intermediate.dense.weight' of "
        f"{directory / 'model.safetensors'} has shape (64, 32), but the model described by "
        "its config needs (48, 32)")


def test_missing_tensor_is_named(bert_dir, tmp_path, capsys):
    directory = copy_dir(bert_dir, tmp_path)
    state = load_file(directory / "model.safetensors")
    del state["bert.encoder.layer.1.output.dense.bias"]
    save_file(state, directory / "model.safetensors")
    assert run_import(directory, tmp_path / "out.ckpt", capsys) == (
        f"error: {directory / 'model.safetensors'} has no tensor "
        "'bert.encoder.layer.1.output.dense.bias' (expected shape (32))")


def test_bert_without_a_masked_lm_head(bert_dir, tmp_path, capsys):
    directory = copy_dir(bert_dir, tmp_path)
    state = load_file(directory / "model.safetensors")
    save_file({k: v for k, v in state.items() if not k.startswith("cls.")},
              directory / "model.safetensors")
    assert "has no masked-LM head (cls.predictions.*)" in run_import(
        directory, tmp_path / "out.ckpt", capsys)


def test_vocabulary_without_the_amino_acids(bert_dir, tmp_path, capsys):
    directory = copy_dir(bert_dir, tmp_path)
    vocab = (directory / "vocab.txt").read_text().replace("\nW\n", "\n[unused2]\n")
    (directory / "vocab.txt").write_text(vocab)
    assert run_import(directory, tmp_path / "out.ckpt", capsys) == (
        f"error: the vocabulary of {directory / 'vocab.txt'} lacks the amino acid(s) W "
        "(protperf needs all 20 of ACDEFGHIKLMNPQRSTVWY as tokens of their own)")


def test_directory_without_vocab(bert_dir, tmp_path, capsys):
    directory = copy_dir(bert_dir, tmp_path)
    (directory / "vocab.txt").unlink()
    assert run_import(directory, tmp_path / "out.ckpt", capsys) == (
        f"error: {directory} has no vocab.txt (the tokens of the model; give one with --vocab)")


def test_older_fair_esm_generation(tmp_path, capsys):
    path = tmp_path / "esm1b_t33_650M_UR50S.pt"
    torch.save({"model": {"encoder.sentence_encoder.embed_tokens.weight": torch.zeros(33, 8)},
                "args": argparse.Namespace(arch="roberta_large")}, path)
    assert run_import(path, tmp_path / "out.ckpt", capsys) == (
        f"error: {path} is a fair-esm ESM-1b / ESM-1v checkpoint (arch='roberta_large'); "
        "protperf imports ESM-2 checkpoints (esm2_t*_*.pt) only")


def test_not_a_fair_esm_file(tmp_path, capsys):
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {}}, path)
    assert run_import(path, tmp_path / "out.ckpt", capsys) == (
        f"error: {path} is not a fair-esm checkpoint (no 'model' entry); protperf imports "
        "ESM-2 checkpoints (esm2_t*_*.pt) only")


def test_missing_source_and_existing_out(fair_esm_file, tmp_path, capsys):
    assert "does not exist" in run_import(tmp_path / "nothing", tmp_path / "out.ckpt", capsys)
    out = tmp_path / "taken.ckpt"
    out.write_text("keep me")
    assert import_status([str(fair_esm_file[0]), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {out} already exists (use --force to replace it)")
    assert out.read_text() == "keep me"
