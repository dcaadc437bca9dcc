"""Integrity: a checkpoint and an export directory carry the sha256 of each tensor, checked on
load (a flipped byte names the file and the tensor); non-finite weights are refused by every
loader; files without a hash still load, with a warning; the one checkpoint writer."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from protperf.app.embed import main as embed_main
from protperf.checkpoint.export import export_model
from protperf.checkpoint.export_dir import WEIGHTS_FILE
from protperf.checkpoint.integrity import INTEGRITY_KEY, first_nonfinite, tensor_digest
from protperf.checkpoint.lightning_io import AtomicCheckpointIO
from protperf.checkpoint.load import load_model, read_checkpoint
from protperf.checkpoint.module import load_module
from protperf.checkpoint.writer import write_checkpoint
from protperf.cli.compose import compose_config
from protperf.errors import CheckpointError, PretrainedSourceError
from tests.inference.conftest import tiny_model
from tests.inference.test_export import save_checkpoint as save_without_hash


@pytest.fixture
def network():
    return tiny_model("exact", causal=False, dtype=torch.float32, weight_scale=1.0)


def flip_a_byte_of(path, tensor: torch.Tensor) -> None:
    """Flip one bit in the middle of ``tensor``'s bytes inside the file ``path`` (stored
    uncompressed by torch.save and safetensors)."""
    data = bytearray(path.read_bytes())
    raw = tensor.detach().contiguous().view(torch.uint8).numpy().tobytes()
    start = data.find(raw)
    assert start > 0 and data.find(raw, start + 1) < 0
    data[start + len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_the_writer_stores_a_hash_and_reads_back_as_written(network, tmp_path):
    path = write_checkpoint(network, network.config, tmp_path / "m.ckpt")
    saved = read_checkpoint(path)
    digests = saved[INTEGRITY_KEY]["tensors"]
    assert digests["model.blocks.1.ffn.fc_in.weight"] == tensor_digest(
        network.blocks[1].ffn.fc_in.weight)
    assert saved["hyper_parameters"]["task"]["objective"] == "mlm"
    assert saved["hyper_parameters"]["alphabet"][:2] == ["<pad>", "<mask>"]
    loaded = load_model(path)
    ids = torch.arange(5, 25)[None]
    assert torch.equal(loaded(ids), network(ids))
    assert torch.equal(load_module(path).model(ids), network(ids))  # training's loader too


def test_a_flipped_byte_in_a_checkpoint_names_the_file_and_tensor(network, tmp_path):
    path = write_checkpoint(network, network.config, tmp_path / "m.ckpt")
    flip_a_byte_of(path, network.blocks[0].attn.v_proj.weight)
    message = (f"^checkpoint {path} is damaged: tensor model.blocks.0.attn.v_proj.weight does "
               r"not match its stored sha256 \(the file changed after it was written\); "
               "restore it or write it again$")
    with pytest.raises(CheckpointError, match=message):
        load_model(path)
    with pytest.raises(CheckpointError, match=message):  # resume reads through Lightning's IO
        AtomicCheckpointIO().load_checkpoint(path, weights_only=True)
    with pytest.raises(CheckpointError, match=message):  # export passes no damage on
        export_model(path, tmp_path / "exported")
    assert not (tmp_path / "exported").exists()


def test_a_flipped_byte_in_an_export_directory_names_the_tensor(network, tmp_path):
    directory = export_model(write_checkpoint(network, network.config, tmp_path / "m.ckpt"),
                             tmp_path / "exported")
    assert INTEGRITY_KEY in json.loads((directory / "config.json").read_text())
    flip_a_byte_of(directory / WEIGHTS_FILE, network.blocks[1].attn.q_proj.weight)
    with pytest.raises(CheckpointError, match=f"^export directory {directory} is damaged: "
                                              "tensor blocks.1.attn.q_proj.weight does not "
                                              "match its stored sha256"):
        load_model(directory)


def test_non_finite_weights_are_refused_by_every_command(network, tmp_path, capsys):
    with torch.no_grad():
        network.blocks[1].ffn.fc_out.bias[3] = float("nan")
    path = save_without_hash(network, tmp_path / "nan.ckpt")  # as a damaged old file would be
    message = (f"checkpoint {path}: weight blocks.1.ffn.fc_out.bias is not finite (NaN or inf); "
               "this model cannot be used (take an earlier checkpoint)")
    with pytest.raises(CheckpointError, match=f"^{message.replace('(', '.').replace(')', '.')}$"):
        load_model(path)
    with pytest.raises(CheckpointError, match="is not finite"):
        load_module(path)
    with pytest.raises(CheckpointError, match=r"out.ckpt: weight blocks.1.ffn.fc_out.bias is not "
                                              r"finite \(NaN or inf\); not writing it$"):
        write_checkpoint(network, network.config, tmp_path / "out.ckpt")
    assert not (tmp_path / "out.ckpt").exists()
    config = compose_config("embed", [f"checkpoint={path}", f"output_dir={tmp_path / 'emb'}",
                                      "progress=false"])
    with pytest.raises(SystemExit) as exit_status:
        embed_main.run(config)  # used to write NaN embeddings with exit status 0
    assert exit_status.value.code == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "emb" / "embeddings").exists()


def test_checkpoints_without_a_hash_load_with_a_warning(network, tmp_path, caplog):
    path = save_without_hash(network, tmp_path / "old.ckpt")
    with caplog.at_level(logging.WARNING):
        load_model(path)
    assert f"checkpoint {path} has no content hash (written by an older protperf): loaded " \
           "without an integrity check" in caplog.text


def test_the_finite_check_finds_nan_and_inf():
    assert first_nonfinite({"a": torch.ones(3), "b": torch.tensor([1.0, float("inf")])}) == "b"
    assert first_nonfinite({"a": torch.tensor([float("nan")]), "i": torch.ones(2)}) == "a"
    assert first_nonfinite({"e": torch.ones(0), "h": torch.ones(4, dtype=torch.bfloat16),
                            "n": torch.arange(3)}) is None


def test_the_writer_refuses_weights_the_config_does_not_describe(network, tmp_path):
    state = {**network.state_dict(), "blocks.2.attn.q_proj.weight": torch.zeros(32, 32)}
    with pytest.raises(PretrainedSourceError, match=r"tensor 'blocks.2.attn.q_proj.weight' is "
                                                    "not part of the model its config"):
        write_checkpoint(state, network.config, tmp_path / "m.ckpt")
    assert list(tmp_path.iterdir()) == []
